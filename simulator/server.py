"""Running the simulator: in a background thread (tests, benchmarks, embedded demo) or in the foreground."""

from __future__ import annotations

import uvicorn

from simulator.app import SimulatorApp, create_app
from simulator.config import SimulatorConfig
from simulator.serving import ThreadedServer, fast_config
from simulator.stats import SimulatorStats

DEFAULT_HOST = "127.0.0.1"  #: loopback only: the simulator is a local stand-in
DEFAULT_STARTUP_TIMEOUT = 10.0  #: seconds to wait for the socket to be bound
SIMULATOR_SHUTDOWN_TIMEOUT = 1  #: seconds in-flight requests get at stop before they are cancelled


class SimulatorServer(ThreadedServer):
    """The simulator served by uvicorn in a daemon thread, on a free loopback port by default.

    Use as a context manager or call :meth:`start` / :meth:`stop`. ``config`` is live: assigning its
    fields (e.g. ``server.config.rpm = 30``) changes the behaviour of the next request.
    """

    app: SimulatorApp

    def __init__(
        self,
        config: SimulatorConfig | None = None,
        *,
        host: str = DEFAULT_HOST,
        port: int = 0,
        startup_timeout: float = DEFAULT_STARTUP_TIMEOUT,
        shutdown_timeout: int = SIMULATOR_SHUTDOWN_TIMEOUT,
    ) -> None:
        super().__init__(create_app(config), host, port, "broker-simulator", startup_timeout=startup_timeout,
                         shutdown_timeout=shutdown_timeout)

    @property
    def config(self) -> SimulatorConfig:
        return self.app.config

    @property
    def stats(self) -> SimulatorStats:
        return self.app.stats

    @property
    def url(self) -> str:
        """Root URL, e.g. ``http://127.0.0.1:PORT`` (admin routes live under ``/_sim``)."""
        return f"http://{self.host}:{self.port}"

    @property
    def base_url(self) -> str:
        """OpenAI base URL, e.g. ``http://127.0.0.1:PORT/v1``."""
        return f"{self.url}/v1"


def serve(host: str, port: int, config: SimulatorConfig, *, log_level: str = "info") -> None:
    """Serve the simulator in the foreground until interrupted (``broker simulate``)."""
    app = create_app(config)
    uvicorn.Server(fast_config(app, host, port, log_level=log_level, quiet=False)).run()
