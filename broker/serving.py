"""Serving an ASGI app with uvicorn in a background thread (embedded mode, tests, benchmarks)."""

import importlib.util
import threading
import time
from types import TracebackType
from typing import Any, Self

import uvicorn

STARTUP_TIMEOUT = 15.0  #: seconds to wait for the socket to be bound
SHUTDOWN_TIMEOUT = 2  #: seconds in-flight requests get at stop


def fast_config(app: Any, host: str, port: int, *, log_level: str = "warning", quiet: bool = True,
                shutdown_timeout: int = SHUTDOWN_TIMEOUT) -> uvicorn.Config:
    """uvicorn with uvloop + httptools when installed, no websockets, no access log."""
    return uvicorn.Config(
        app, host=host, port=port, log_level=log_level, access_log=False,
        loop="uvloop" if importlib.util.find_spec("uvloop") else "asyncio",
        http="httptools" if importlib.util.find_spec("httptools") else "h11",
        ws="none", lifespan="off", server_header=False, timeout_graceful_shutdown=shutdown_timeout,
        log_config=None if quiet else uvicorn.config.LOGGING_CONFIG,
    )


class ThreadedServer:
    """An ASGI app served on ``host:port`` (0 = a free port) from a daemon thread."""

    def __init__(self, app: Any, host: str = "127.0.0.1", port: int = 0, name: str = "http-server") -> None:
        self.app, self.host, self.requested_port, self.name = app, host, port, name
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> Self:
        server = uvicorn.Server(fast_config(self.app, self.host, self.requested_port))
        thread = threading.Thread(target=_run, args=(server,), name=self.name, daemon=True)
        self._server, self._thread = server, thread
        thread.start()
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"{self.name} failed to start on {self.host}:{self.requested_port}")
            time.sleep(0.005)
        self.port = int(server.servers[0].sockets[0].getsockname()[1])
        return self

    def stop(self) -> None:
        server, thread = self._server, self._thread
        self._server = self._thread = None
        if server is None or thread is None:
            return
        server.should_exit = True
        thread.join(SHUTDOWN_TIMEOUT + 5.0)
        if thread.is_alive():
            server.force_exit = True
            thread.join()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()


def _run(server: uvicorn.Server) -> None:
    try:
        server.run()
    except SystemExit:  # uvicorn exits on a bind failure; start() reports it
        pass
