"""Serving an ASGI app with uvicorn from a background thread (the simulator, the embedded broker, tests).

It lives with the simulator, which may import nothing of ours; the broker's CLI and tests use it too.
"""

import importlib.util
import threading
import time
from types import TracebackType
from typing import Any, Self

import uvicorn

from simulator.read_timeouts import DEFAULT_BODY_TIMEOUT, DEFAULT_HEADER_TIMEOUT, guarded_protocol

DEFAULT_STARTUP_TIMEOUT = 15.0  #: seconds to wait for the socket to be bound
DEFAULT_SHUTDOWN_TIMEOUT = 2  #: seconds in-flight requests get at stop before they are cancelled
_POLL_INTERVAL = 0.005  #: seconds between checks of the server's started flag


def fast_config(app: Any, host: str, port: int, *, log_level: str = "warning", quiet: bool = True,
                shutdown_timeout: int = DEFAULT_SHUTDOWN_TIMEOUT, header_timeout: float = DEFAULT_HEADER_TIMEOUT,
                body_timeout: float = DEFAULT_BODY_TIMEOUT, http: str | None = None) -> uvicorn.Config:
    """uvicorn with uvloop + httptools when installed, no websockets, no access log, read timeouts for slow
    clients (simulator/read_timeouts.py); ``quiet`` leaves logging as it is configured (uvicorn's own otherwise).
    ``http`` picks uvicorn's HTTP implementation (``"h11"`` or ``"httptools"``; default: httptools if installed)."""
    http = http or ("httptools" if importlib.util.find_spec("httptools") else "h11")
    return uvicorn.Config(
        app, host=host, port=port, log_level=log_level, access_log=False,
        loop="uvloop" if importlib.util.find_spec("uvloop") else "asyncio",
        http=guarded_protocol(http, header_timeout, body_timeout),
        ws="none", lifespan="off", server_header=False, timeout_graceful_shutdown=shutdown_timeout,
        log_config=None if quiet else uvicorn.config.LOGGING_CONFIG,
    )


class ThreadedServer:
    """An ASGI app served on ``host:port`` (0 = a free port) from a daemon thread.

    Use as a context manager or call :meth:`start` / :meth:`stop`.
    """

    def __init__(self, app: Any, host: str = "127.0.0.1", port: int = 0, name: str = "http-server", *,
                 startup_timeout: float = DEFAULT_STARTUP_TIMEOUT, shutdown_timeout: int = DEFAULT_SHUTDOWN_TIMEOUT,
                 header_timeout: float = DEFAULT_HEADER_TIMEOUT, body_timeout: float = DEFAULT_BODY_TIMEOUT,
                 http: str | None = None) -> None:
        self.app, self.host, self.requested_port, self.name = app, host, port, name
        self.startup_timeout, self.shutdown_timeout = startup_timeout, shutdown_timeout
        self.header_timeout, self.body_timeout, self.http = header_timeout, body_timeout, http
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._port: int | None = None

    @property
    def port(self) -> int:
        """The bound port (known once started)."""
        if self._port is None:
            raise RuntimeError(f"{self.name} is not running")
        return self._port

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> Self:
        """Start serving and wait until the socket is bound; raise RuntimeError if it fails."""
        if self._thread is not None:
            raise RuntimeError(f"{self.name} is already running")
        server = uvicorn.Server(fast_config(self.app, self.host, self.requested_port,
                                           shutdown_timeout=self.shutdown_timeout,
                                           header_timeout=self.header_timeout, body_timeout=self.body_timeout,
                                           http=self.http))
        thread = threading.Thread(target=_run, args=(server,), name=self.name, daemon=True)
        self._server, self._thread = server, thread
        thread.start()
        deadline = time.monotonic() + self.startup_timeout
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"{self.name} failed to start on {self.host}:{self.requested_port}")
            time.sleep(_POLL_INTERVAL)
        self._port = int(server.servers[0].sockets[0].getsockname()[1])
        return self

    def stop(self) -> None:
        """Stop serving (in-flight requests get ``shutdown_timeout`` seconds) and join the thread."""
        server, thread = self._server, self._thread
        self._server = self._thread = self._port = None
        if server is None or thread is None:
            return
        server.should_exit = True
        thread.join(self.shutdown_timeout + 5.0)
        if thread.is_alive():
            server.force_exit = True
            thread.join()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()


def _run(server: uvicorn.Server) -> None:
    """Run the server; a startup failure (uvicorn calls ``sys.exit``) just ends the thread."""
    try:
        server.run()
    except SystemExit:
        pass
