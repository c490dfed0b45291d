"""Shared fixtures: the simulator, an embedded broker against it, and real-service switches."""

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from simulator import SimulatorConfig, SimulatorServer
from tests.harness import EmbeddedBroker, sim_catalogue, test_settings
from tests.s3server import S3Server


@pytest.fixture
def sim() -> Iterator[SimulatorServer]:
    with SimulatorServer(SimulatorConfig()) as server:
        yield server


@pytest.fixture
def make_broker(tmp_path: Path, sim: SimulatorServer) -> Iterator[Callable[..., EmbeddedBroker]]:
    """Start an embedded broker against ``sim``; keyword arguments override settings or provider fields."""
    started: list[EmbeddedBroker] = []

    def start(provider: dict[str, Any] | None = None, workers: bool = True, planner: bool = True,
              **settings: Any) -> EmbeddedBroker:
        broker = EmbeddedBroker(test_settings(tmp_path, **settings), sim_catalogue(sim, **(provider or {})))
        started.append(broker.start(workers=workers, planner=planner))
        return broker

    yield start
    for broker in reversed(started):
        broker.stop()


@pytest.fixture
def broker(make_broker: Callable[..., EmbeddedBroker]) -> EmbeddedBroker:
    return make_broker()


def require_service(env_var: str) -> str:
    """A real service's URL from the environment; skip locally when absent, fail in CI (never skip there)."""
    url = os.environ.get(env_var)
    if not url:
        if os.environ.get("CI"):
            raise RuntimeError(f"{env_var} must be set in CI: the integration suite runs against real services")
        pytest.skip(f"{env_var} not set")
    return url


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    """A real S3-compatible server (moto's) on loopback, for the whole session."""
    server = S3Server().start(tmp_path_factory.mktemp("s3") / "moto.log")
    yield server
    server.stop()


@pytest.fixture
def s3_url(s3_server: S3Server, monkeypatch: pytest.MonkeyPatch) -> str:
    """``s3://<a fresh bucket>/files``, with the AWS_* variables pointing at ``s3_server`` for this test."""
    for name, value in s3_server.env.items():
        monkeypatch.setenv(name, value)
    return f"s3://{s3_server.new_bucket()}/files"
