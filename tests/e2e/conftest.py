"""Fixtures for brokers with catalogues of their own (several providers, routes) and a second simulator."""

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from broker.catalogue import Catalogue, ProviderConfig
from simulator import SimulatorConfig, SimulatorServer
from tests.harness import EmbeddedBroker, test_settings

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
def other_sim() -> Iterator[SimulatorServer]:
    """A second simulated provider, independent of ``sim``."""
    with SimulatorServer(SimulatorConfig()) as server:
        yield server
