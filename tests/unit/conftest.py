"""One simulator server per test module, reset before each test (starting a server per test is slow)."""

from collections.abc import Iterator

import pytest

from simulator import SimulatorConfig, SimulatorServer

BATCH_TURNAROUND = 0.2  #: seconds a native batch takes in unit tests


@pytest.fixture(scope="module")
def server() -> Iterator[SimulatorServer]:
    with SimulatorServer() as running:
        yield running


@pytest.fixture
def sim(server: SimulatorServer) -> SimulatorServer:
    """The module's server with default config (quick native batches), full buckets and zeroed stats."""
    server.app.apply_config({**SimulatorConfig().to_dict(), "batch_turnaround_seconds": BATCH_TURNAROUND})
    server.app.reset(limits=True)
    return server
