"""Fixtures for the API tier: one embedded broker per module, one fresh project (tenant) per test.

Stopping an embedded broker with workers takes about two seconds, so a module shares one; tests stay
independent because each gets its own project, and projects never see each other's objects.
A module sets ``BROKER_OPTIONS = {"workers": False, ...}`` to change how its broker starts.
Tests that need other settings use ``make_broker`` in a module that does not use ``shared_broker``
(workers of two brokers in one process would share the actor's runtime).
"""

from collections.abc import Iterator
from dataclasses import dataclass
from uuid import uuid4

import httpx
import openai
import pytest

from simulator import SimulatorConfig, SimulatorServer
from tests.harness import EmbeddedBroker, sim_catalogue, test_settings


@pytest.fixture(scope="module")
def module_sim() -> Iterator[SimulatorServer]:
    with SimulatorServer(SimulatorConfig()) as server:
        yield server


@pytest.fixture(scope="module")
def shared_broker(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory,
                  module_sim: SimulatorServer) -> Iterator[EmbeddedBroker]:
    options = dict(getattr(request.module, "BROKER_OPTIONS", {}))
    workers, planner = options.pop("workers", True), options.pop("planner", True)
    broker = EmbeddedBroker(test_settings(tmp_path_factory.mktemp("broker"), **options), sim_catalogue(module_sim))
    broker.start(workers=workers, planner=planner)
    yield broker
    broker.stop()


@dataclass
class Tenant:
    """One project on the shared broker: its key, an SDK client and a raw HTTP client (base URL ``/v1``)."""

    broker: EmbeddedBroker
    key: str
    client: openai.OpenAI
    http: httpx.Client

    def __enter__(self) -> "Tenant":
        return self

    def __exit__(self, *exc: object) -> None:
        self.http.close()
        self.client.close()


def open_tenant(broker: EmbeddedBroker, project: str | None = None) -> Tenant:
    key = broker.new_key(project or f"project-{uuid4().hex[:12]}")
    return Tenant(broker, key, broker.client(key), broker.http(key))


@pytest.fixture
def tenant(shared_broker: EmbeddedBroker) -> Iterator[Tenant]:
    with open_tenant(shared_broker) as t:
        yield t


@pytest.fixture
def other_tenant(shared_broker: EmbeddedBroker) -> Iterator[Tenant]:
    with open_tenant(shared_broker) as t:
        yield t
