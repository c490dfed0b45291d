"""Fixtures for brokers with catalogues of their own (several providers, routes), brokers a test restarts, and a
second simulator."""

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from broker.catalogue import Catalogue, ProviderConfig
from simulator import SimulatorConfig, SimulatorServer
from tests.harness import EmbeddedBroker, sim_catalogue, test_settings

StartBroker = Callable[..., EmbeddedBroker]


@pytest.fixture
def start_broker(tmp_path: Path) -> Iterator[StartBroker]:
    """Start an embedded broker over the given providers; keyword arguments override settings."""
    started: list[EmbeddedBroker] = []

    def start(*providers: ProviderConfig, **settings: Any) -> EmbeddedBroker:
        catalogue = Catalogue(providers={p.name: p for p in providers})
        broker = EmbeddedBroker(test_settings(tmp_path, **settings), catalogue).start()
        started.append(broker)
        return broker

    yield start
    for broker in reversed(started):
        broker.stop()


@pytest.fixture
def restartable(tmp_path: Path, sim: SimulatorServer) -> Iterator[StartBroker]:
    """Like ``make_broker`` (same data dir and database each call; keyword arguments override settings), for tests
    that stop a broker themselves: the brokers still running stop at teardown."""
    running: list[EmbeddedBroker] = []

    def start(**settings: Any) -> EmbeddedBroker:
        broker = EmbeddedBroker(test_settings(tmp_path, **settings), sim_catalogue(sim)).start()
        running.append(broker)
        return broker

    yield start
    for broker in reversed(running):
        if not broker.procs.stop_event.is_set():
            broker.stop()


@pytest.fixture
def other_sim() -> Iterator[SimulatorServer]:
    """A second simulated provider, independent of ``sim``."""
    with SimulatorServer(SimulatorConfig()) as server:
        yield server
