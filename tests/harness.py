"""An embedded broker for tests: real HTTP API, real Dramatiq workers, the simulator as upstream."""

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import openai
from openai.types import Batch

from broker.auth import ADMIN, create_key, get_or_create_project, issue_key
from broker.catalogue import Catalogue, ModelSpec, ProviderConfig
from broker.core import Core
from broker.db import session_scope
from broker.settings import Settings
from cli.compose import Processes
from simulator import SimulatorServer
from simulator.serving import ThreadedServer

TERMINAL = ("completed", "failed", "expired", "cancelled")
CHAT_MODEL = "gpt-4o-mini"
EMBEDDING_MODEL = "text-embedding-3-small"
INPUT_PRICE, OUTPUT_PRICE = 0.15, 0.60  #: the chat model's prices in the test catalogues (USD per 1M tokens)


def sim_catalogue(sim: SimulatorServer, **provider: Any) -> Catalogue:
    models = {CHAT_MODEL: ModelSpec(input=INPUT_PRICE, output=OUTPUT_PRICE), EMBEDDING_MODEL: ModelSpec(input=0.02),
              "omni-moderation-latest": ModelSpec()}
    return Catalogue(providers={"sim": ProviderConfig(base_url=sim.base_url, models=models, **provider)})


def provider(name: str, sim: SimulatorServer, **fields: Any) -> ProviderConfig:
    """A provider serving the chat model on ``sim``."""
    return ProviderConfig(name=name, base_url=sim.base_url,
                          models={CHAT_MODEL: ModelSpec(input=INPUT_PRICE, output=OUTPUT_PRICE)}, **fields)


def test_settings(tmp_path: Path, **overrides: Any) -> Settings:
    defaults: dict[str, Any] = {
        "data_dir": tmp_path, "database_url": f"sqlite:///{tmp_path}/broker.db", "planner_interval": 0.05,
        "retry_base_seconds": 0.02, "retry_max_seconds": 0.2, "worker_threads": 16,
    }
    return Settings(**{**defaults, **overrides})


MakeBroker = Callable[..., "EmbeddedBroker"]  #: the ``make_broker`` fixture: start an embedded broker


@dataclass
class EmbeddedBroker:
    """API + planner + workers in this process, like ``broker serve``, on a free loopback port."""

    settings: Settings
    catalogue: Catalogue
    core: Core = field(init=False)
    procs: Processes = field(init=False)
    server: ThreadedServer = field(init=False)
    key: str = field(init=False)
    admin_key: str = field(init=False)

    def start(self, workers: bool = True, planner: bool = True) -> "EmbeddedBroker":
        self.core = Core.open(self.settings, self.catalogue)
        self.procs = Processes(self.core)
        if workers:
            self.procs.start_workers(self.settings.worker_threads)
        if planner:
            self.procs.start_planner()
        self.server = ThreadedServer(self.procs.app(), name="broker-api",
                                     header_timeout=self.settings.http_header_timeout,
                                     body_timeout=self.settings.http_body_timeout).start()
        self.key = self.new_key("default")
        with session_scope(self.core.engine) as session:
            self.admin_key = issue_key(session, ADMIN, name="tests")[1]
        return self

    def stop(self) -> None:
        self.server.stop()
        self.procs.stop()

    @property
    def base_url(self) -> str:
        return self.server.url + "/v1"

    def new_key(self, project: str) -> str:
        with session_scope(self.core.engine) as session:
            return create_key(session, get_or_create_project(session, project).id)

    def client(self, key: str | None = None) -> openai.OpenAI:
        return openai.OpenAI(base_url=self.base_url, api_key=key or self.key, max_retries=0)

    def admin_http(self) -> httpx.Client:
        """A raw HTTP client on the API with the broker's admin key."""
        return self.http(self.admin_key)

    def http(self, key: str | None = None) -> httpx.Client:
        """A raw HTTP client on the API (base URL ``/v1``) with ``key``'s bearer (default: the broker's key)."""
        return httpx.Client(base_url=self.base_url, headers={"Authorization": f"Bearer {key or self.key}"},
                            timeout=10.0, trust_env=False)


def jsonl(lines: Sequence[object]) -> bytes:
    """``lines`` as JSONL: a string goes in as it is (a broken line, say), anything else as JSON."""
    return "".join((x if isinstance(x, str) else json.dumps(x)) + "\n" for x in lines).encode()


def chat_line(i: int, content: str | None = None, **body: Any) -> dict[str, Any]:
    return {"custom_id": f"req-{i}", "method": "POST", "url": "/v1/chat/completions",
            "body": {"model": CHAT_MODEL, "messages": [{"role": "user", "content": content or f"hello {i}"}], **body}}


def chat_ids(n: int) -> list[str]:
    """The custom_ids of ``chat_line(0)`` … ``chat_line(n - 1)``."""
    return [f"req-{i}" for i in range(n)]


def embedding_line(i: int, text: str | list[str] | None = None) -> dict[str, Any]:
    return {"custom_id": f"emb-{i}", "method": "POST", "url": "/v1/embeddings",
            "body": {"model": EMBEDDING_MODEL, "input": text if text is not None else f"document number {i}"}}


def upload(client: openai.OpenAI, lines: Sequence[object], purpose: str = "batch") -> str:
    """Upload ``lines`` as a JSONL file through the SDK; returns the file id."""
    return client.files.create(file=("input.jsonl", jsonl(lines)), purpose=purpose).id  # type: ignore[arg-type]


def submit(client: openai.OpenAI, lines: Sequence[object], endpoint: str = "/v1/chat/completions",
           completion_window: str = "24h", **extra_body: Any) -> Batch:
    """Upload ``lines`` and create a batch over them; keyword arguments go in the request body."""
    return client.batches.create(input_file_id=upload(client, lines), endpoint=endpoint,  # type: ignore[arg-type]
                                 completion_window=completion_window,  # type: ignore[arg-type]
                                 extra_body=extra_body or None)


def wait_for(client: openai.OpenAI, batch_id: str, statuses: Sequence[str] = TERMINAL,
             timeout: float = 60.0, until: Callable[[Batch], bool] | None = None) -> Batch:
    """Poll the batch until its status is one of ``statuses`` (or, given ``until``, until that holds)."""
    done = until or (lambda b: b.status in statuses)
    deadline = time.monotonic() + timeout
    batch = client.batches.retrieve(batch_id)
    while not done(batch):
        if time.monotonic() > deadline:
            raise AssertionError(f"batch {batch_id} still {batch.status} after {timeout}s: {batch}")
        time.sleep(0.05)
        batch = client.batches.retrieve(batch_id)
    return batch


def read_jsonl(client: openai.OpenAI, file_id: str | None) -> list[dict[str, Any]]:
    if file_id is None:
        return []
    return [json.loads(line) for line in client.files.content(file_id).text.splitlines() if line]


def results_once(client: openai.OpenAI, batch: Batch, custom_ids: Sequence[str]) -> tuple[
        list[dict[str, Any]], list[dict[str, Any]]]:
    """The batch's output and error lines, after checking every ``custom_ids`` entry appears exactly once."""
    out, err = read_jsonl(client, batch.output_file_id), read_jsonl(client, batch.error_file_id)
    seen = [line["custom_id"] for line in out + err]
    assert sorted(seen) == sorted(custom_ids), "every custom_id must appear exactly once across output+error"
    counts = batch.request_counts
    assert counts is not None
    assert (counts.total, counts.completed, counts.failed) == (len(custom_ids), len(out), len(err))
    return out, err


def free_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def publish_provider_state(broker: EmbeddedBroker) -> None:
    """Make the embedded worker report its provider state now (it does every couple of seconds anyway)."""
    from dramatiq.asyncio import get_event_loop_thread

    loop, process = get_event_loop_thread(), broker.procs.worker_process
    assert loop is not None and process is not None
    loop.run_coroutine(process.current().publish_state())


def usage_by(broker: EmbeddedBroker, key: str) -> dict[str, int]:
    """Requests of the default project from GET /v1/usage, summed by ``key`` (route, provider, model)."""
    report = broker.client().get("/usage", cast_to=object)
    assert isinstance(report, dict)
    totals: dict[str, int] = {}
    for row in report["data"]:
        totals[row[key]] = totals.get(row[key], 0) + row["requests"]
    return totals


def usage_by_route(broker: EmbeddedBroker) -> dict[str, int]:
    return usage_by(broker, "route")


def usage_by_provider(broker: EmbeddedBroker) -> dict[str, int]:
    return usage_by(broker, "provider")
