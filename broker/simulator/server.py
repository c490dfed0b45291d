"""Running the simulator: in a background thread (tests, benchmarks, embedded demo) or in the foreground."""

from __future__ import annotations

import importlib.util
import threading
import time
from types import TracebackType
from typing import Self

import uvicorn

from broker.simulator.app import SimulatorApp, create_app
from broker.simulator.config import SimulatorConfig
from broker.simulator.stats import SimulatorStats

DEFAULT_HOST = "127.0.0.1"  #: loopback only: the simulator is a local stand-in
DEFAULT_STARTUP_TIMEOUT = 10.0  #: seconds to wait for the socket to be bound
DEFAULT_SHUTDOWN_TIMEOUT = 1  #: seconds in-flight requests get at stop before they are cancelled
_POLL_INTERVAL = 0.005  #: seconds between checks of the server's started flag


def _loop_name() -> str:
    return "uvloop" if importlib.util.find_spec("uvloop") is not None else "asyncio"


def _http_name() -> str:
    return "httptools" if importlib.util.find_spec("httptools") is not None else "h11"


def uvicorn_config(
    app: SimulatorApp,
    host: str,
    port: int,
    *,
    log_level: str = "warning",
    configure_logging: bool = False,
    shutdown_timeout: int = DEFAULT_SHUTDOWN_TIMEOUT,
) -> uvicorn.Config:
    """The fastest uvicorn settings for the simulator (uvloop + httptools when installed, no websockets)."""
    kwargs = {} if configure_logging else {"log_config": None}
    return uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level=log_level,
        access_log=False,
        loop=_loop_name(),
        http=_http_name(),
        ws="none",
        lifespan="off",
        server_header=False,
        timeout_graceful_shutdown=shutdown_timeout,
        **kwargs,  # type: ignore[arg-type]
    )


class SimulatorServer:
    """The simulator served by uvicorn in a daemon thread, on a free loopback port by default.

    Use as a context manager or call :meth:`start` / :meth:`stop`. ``config`` is live: assigning its
    fields (e.g. ``server.config.rpm = 30``) changes the behaviour of the next request.
    """

    def __init__(
        self,
        config: SimulatorConfig | None = None,
        *,
        host: str = DEFAULT_HOST,
        port: int = 0,
        startup_timeout: float = DEFAULT_STARTUP_TIMEOUT,
        shutdown_timeout: int = DEFAULT_SHUTDOWN_TIMEOUT,
    ) -> None:
        self.app = create_app(config)
        self.host = host
        self.requested_port = port
        self.startup_timeout = startup_timeout
        self.shutdown_timeout = shutdown_timeout
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._port: int | None = None

    @property
    def config(self) -> SimulatorConfig:
        return self.app.config

    @property
    def stats(self) -> SimulatorStats:
        return self.app.stats

    @property
    def port(self) -> int:
        """The bound port (known once started)."""
        if self._port is None:
            raise RuntimeError("the simulator is not running")
        return self._port

    @property
    def url(self) -> str:
        """Root URL, e.g. ``http://127.0.0.1:PORT`` (admin routes live under ``/_sim``)."""
        return f"http://{self.host}:{self.port}"

    @property
    def base_url(self) -> str:
        """OpenAI base URL, e.g. ``http://127.0.0.1:PORT/v1``."""
        return f"{self.url}/v1"

    def start(self) -> Self:
        """Start serving and wait until the socket is bound; raise RuntimeError if it fails."""
        if self._thread is not None:
            raise RuntimeError("the simulator is already running")
        server = uvicorn.Server(
            uvicorn_config(self.app, self.host, self.requested_port, shutdown_timeout=self.shutdown_timeout)
        )
        thread = threading.Thread(target=_run_quietly, args=(server,), name="broker-simulator", daemon=True)
        self._server, self._thread = server, thread
        thread.start()
        deadline = time.monotonic() + self.startup_timeout
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"the simulator failed to start on {self.host}:{self.requested_port}")
            time.sleep(_POLL_INTERVAL)
        self._port = int(server.servers[0].sockets[0].getsockname()[1])
        return self

    def stop(self) -> None:
        """Stop serving (in-flight requests get ``shutdown_timeout`` seconds) and join the thread."""
        server, thread = self._server, self._thread
        self._server = self._thread = None
        self._port = None
        if server is None or thread is None:
            return
        server.should_exit = True
        thread.join(self.shutdown_timeout + 5.0)
        if thread.is_alive():
            server.force_exit = True
            thread.join()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def _run_quietly(server: uvicorn.Server) -> None:
    """Run the server; a startup failure (uvicorn calls ``sys.exit``) just ends the thread."""
    try:
        server.run()
    except SystemExit:
        pass


def serve(host: str, port: int, config: SimulatorConfig, *, log_level: str = "info") -> None:
    """Serve the simulator in the foreground until interrupted (``broker simulate``)."""
    app = create_app(config)
    uvicorn.Server(uvicorn_config(app, host, port, log_level=log_level, configure_logging=True)).run()
