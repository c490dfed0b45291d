"""The ``broker`` CLI through its real entry point (typer's runner on ``cli.main.app``) against an embedded broker.

Stopping a broker with workers takes about two seconds, so a module shares one; each test runs as its own
project (a fresh API key), so ``broker status`` lists only that test's batches.
"""

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from uuid import uuid4

import openai
import pytest
from click.testing import Result
from typer.testing import CliRunner

from cli.main import app
from simulator import SimulatorConfig, SimulatorServer
from tests.harness import EmbeddedBroker, chat_line, jsonl, sim_catalogue, test_settings


@dataclass
class Cli:
    """Runs ``broker …`` with BROKER_URL / BROKER_API_KEY pointing at ``broker`` as the project of ``key``."""

    broker: EmbeddedBroker
    key: str
    runner: CliRunner = field(default_factory=CliRunner)

    def env(self, **overrides: str | None) -> dict[str, str | None]:
        return {"BROKER_URL": self.broker.base_url, "BROKER_API_KEY": self.key, "OPENAI_API_KEY": None,
                "COLUMNS": "200", **overrides}

    def __call__(self, *args: str, **env: str | None) -> Result:
        return self.runner.invoke(app, list(args), env=self.env(**env))

    def client(self) -> openai.OpenAI:
        return self.broker.client(self.key)


def assert_clean_failure(result: Result, message: str) -> None:
    """Exit code 1, the message on stderr, and no traceback (the runner would keep the exception)."""
    assert result.exit_code == 1, result.output
    assert isinstance(result.exception, SystemExit), result.exception
    assert message in result.stderr
    assert "Traceback" not in result.output


def modelless_chat_lines(n: int) -> list[dict[str, Any]]:
    """``chat_line(0)`` … ``chat_line(n - 1)`` without their model, which ``--model`` fills in."""
    lines = [chat_line(i) for i in range(n)]
    for line in lines:
        del line["body"]["model"]
    return lines


def write_jsonl(path: Path, lines: Sequence[object]) -> Path:
    path.write_bytes(jsonl(lines))
    return path


@pytest.fixture(scope="module")
def cli_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedBroker]:
    with SimulatorServer(SimulatorConfig()) as sim:
        broker = EmbeddedBroker(test_settings(tmp_path_factory.mktemp("broker")), sim_catalogue(sim)).start()
        yield broker
        broker.stop()


@pytest.fixture
def cli(cli_broker: EmbeddedBroker) -> Cli:
    return Cli(cli_broker, cli_broker.new_key(f"cli-{uuid4().hex[:12]}"))


@pytest.fixture
def idle_cli(make_broker: Callable[..., EmbeddedBroker]) -> Cli:
    """A broker that accepts batches but runs no line (no workers, no planner): batches stay in progress."""
    broker = make_broker(workers=False, planner=False)
    return Cli(broker, broker.key)
