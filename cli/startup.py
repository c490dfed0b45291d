"""Starting a broker process: the demo simulator's port, and expected failures as one line instead of a traceback."""

import socket
from collections.abc import Iterator
from contextlib import contextmanager

import redis.exceptions
import sqlalchemy.exc
import typer
from rich.console import Console
from rich.markup import escape

from broker.settings import DEFAULT_SIMULATOR_PORT, Settings
from simulator import SimulatorServer


class StartupError(Exception):
    """A broker process cannot start for a reason its operator can fix (said in one line, exit code 1)."""


def port_is_free(host: str, port: int) -> bool:
    """Whether a server could listen on ``host:port`` now: as uvicorn binds (SO_REUSEADDR), a port whose last
    server just died (its connections in TIME_WAIT) counts as free."""
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def require_free_port(host: str, port: int) -> None:
    if not port_is_free(host, port):
        raise StartupError(f"port {port} on {host} is busy (another broker?); pick another with --port")


def start_simulator(settings: Settings, requested: int | None, console: Console) -> tuple[SimulatorServer, Settings]:
    """The demo simulator on ``requested`` (refused when busy), else on the configured port, or on a free port when
    that one is busy (a second ``broker serve`` on one machine); the settings then name the port it got."""
    port = requested if requested is not None else settings.simulator_port
    if not port_is_free("127.0.0.1", port):
        if requested is not None or settings.simulator_port != DEFAULT_SIMULATOR_PORT:
            raise StartupError(f"the simulator port {port} is busy; pick another with --simulator-port")
        console.print(f"port {port} is busy (another broker?): the demo simulator takes a free port")
        port = 0
    sim = SimulatorServer(port=port).start()
    return sim, settings.model_copy(update={"simulator_port": sim.port})


@contextmanager
def startup_errors(console: Console) -> Iterator[None]:
    """Configuration and connection problems at start as ``error: …`` and exit code 1, never a traceback."""
    try:
        yield
    except StartupError as exc:
        message = str(exc)
    except (ValueError, OSError, sqlalchemy.exc.SQLAlchemyError, redis.exceptions.RedisError) as exc:
        message = f"cannot start: {exc}"  # ValueError covers a broken TOML file and pydantic's validation errors
    else:
        return
    console.print(f"[bold red]error:[/] {escape(message)}")
    raise typer.Exit(1)
