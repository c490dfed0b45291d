"""One simulator server per test module, reset before each test (starting a server per test is slow), clients
on it, and the native batch adapters (OpenAI Files + Batches, Anthropic Message Batches) as one parametrized
fixture."""

import asyncio
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, TypeVar

import httpx
import openai
import pytest
from sqlalchemy import Connection, text

from broker.catalogue import ProviderConfig
from providers.anthropic import make_anthropic_client
from providers.anthropic_batch import AnthropicBatchClient
from providers.base import BatchLine, make_client
from providers.openai_batch import NativeBatchClient
from simulator import SimulatorConfig, SimulatorServer

BATCH_TURNAROUND = 0.2  #: seconds a native batch takes in unit tests
CHAT_URL = "/v1/chat/completions"
T = TypeVar("T")
BatchClient = NativeBatchClient | AnthropicBatchClient
"""Either native batch adapter (they have one interface)."""


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


@pytest.fixture
def client(sim: SimulatorServer) -> Iterator[httpx.Client]:
    """A raw HTTP client on ``sim`` (base URL ``/v1``)."""
    with httpx.Client(base_url=sim.base_url, timeout=5.0) as http:
        yield http


@pytest.fixture
def sdk(sim: SimulatorServer) -> Iterator[openai.OpenAI]:
    """The official SDK on ``sim``."""
    with openai.OpenAI(base_url=sim.base_url, api_key="sk-test", max_retries=0) as api:
        yield api


@dataclass(frozen=True)
class NativeAdapter:
    """One native batch adapter under test, and what its provider answers differently from the other's."""

    kind: str  #: the provider kind (``ProviderConfig.kind``)
    adapter: Callable[[httpx.AsyncClient], BatchClient]
    client: Callable[[ProviderConfig], httpx.AsyncClient]  #: the provider client the workers would use
    model: str
    batch_prefix: str  #: how the provider's batch ids start
    input_files: bool  #: the adapter uploads its input as a file (which it can delete)
    batch_usage: bool  #: the provider's batch object reports token totals
    line_request_ids: bool  #: a succeeded line carries the provider's request id
    bad_request_error: dict[str, str] = field(default_factory=dict)
    """Fields of the error of a line the simulator answers with a 400 (``__sim_error_400__``)."""
    server_error_type: str = ""  #: error type of a line the simulator fails with a 500
    cancel_refused: str = ""  #: part of the answer to cancelling a batch that has ended
    not_a_batch: str = ""  #: part of the error raised for a 200 that is not a batch object

    def run(self, base_url: str, scenario: Callable[[BatchClient], Awaitable[T]]) -> T:
        """Run ``scenario`` with the adapter over the provider client the workers would use."""

        async def main() -> T:
            async with self.client(ProviderConfig(name=self.kind, kind=self.kind, base_url=base_url)) as client:
                return await scenario(self.adapter(client))

        return asyncio.run(main())

    def mocked(self, handler: Callable[[httpx.Request], httpx.Response],
               scenario: Callable[[BatchClient], Awaitable[T]]) -> T:
        """Run ``scenario`` with the adapter over a client whose every request ``handler`` answers."""

        async def main() -> T:
            transport = httpx.MockTransport(handler)
            async with httpx.AsyncClient(base_url="http://upstream/v1/", transport=transport) as client:
                return await scenario(self.adapter(client))

        return asyncio.run(main())

    def chat_lines(self, count: int, prefix: str = "r", text: str = "hello", **extra: Any) -> list[BatchLine]:
        body = {"model": self.model, "messages": [{"role": "user", "content": text}], **extra}
        return [(f"{prefix}{i}", CHAT_URL, body) for i in range(count)]


OPENAI = NativeAdapter(
    kind="openai", adapter=NativeBatchClient, client=make_client, model="gpt-4o-mini", batch_prefix="batch_",
    input_files=True, batch_usage=True, line_request_ids=True,
    bad_request_error={"code": "simulated_error"}, server_error_type="server_error", cancel_refused="Cannot cancel",
    not_a_batch="not a JSON object")
ANTHROPIC = NativeAdapter(
    kind="anthropic", adapter=AnthropicBatchClient, client=make_anthropic_client, model="claude-haiku-4-5",
    batch_prefix="msgbatch_", input_files=False, batch_usage=False, line_request_ids=False,
    bad_request_error={"type": "invalid_request_error"}, server_error_type="api_error",
    cancel_refused="already ended", not_a_batch="not a Message Batch")


@pytest.fixture(params=[OPENAI, ANTHROPIC], ids=lambda a: a.kind)
def adapter(request: pytest.FixtureRequest) -> NativeAdapter:
    """Each native batch adapter in turn."""
    param: NativeAdapter = request.param
    return param


def insert_batch(conn: Connection, status: str, total: int, expires_at: float | None = None) -> None:
    """Batch ``b`` of project ``proj`` (chat, priority normal) straight into SQL, for tests below the API."""
    conn.execute(text("INSERT INTO project (id, name, created_at) VALUES ('proj', 'p', 0)"))
    conn.execute(text("INSERT INTO batch (id, project_id, endpoint, input_file_id, completion_window, status, "
                      "created_at, expires_at, total, completed, failed, input_tokens, output_tokens, priority, "
                      "priority_label, route, result_seq) VALUES ('b', 'proj', '/v1/chat/completions', 'f', "
                      "'24h', :status, 0, :exp, :total, 0, 0, 0, 0, 20, 'normal', 'auto', 0)"),
                 {"status": status, "exp": expires_at, "total": total})
