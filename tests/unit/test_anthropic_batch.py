"""The Message Batches adapter against the real simulator (MockTransport for single HTTP edge cases)."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import httpx
import orjson
import pytest

from broker.catalogue import ProviderConfig
from broker.errors import RetryableUpstream, TerminalUpstream
from providers.anthropic import make_anthropic_client
from providers.anthropic_batch import (
    AnthropicBatchClient,
    local_custom_id,
    parse_result,
    remote_batch,
    remote_custom_id,
)
from providers.base import BatchLine, LineResult, RemoteBatch
from providers.openai_batch import NativeBatchClient
from simulator import SimulatorServer
from tests.unit.test_native_batch_adapter import CHAT_URL, until_ended

T = TypeVar("T")


@pytest.fixture
def batch_sim(sim: SimulatorServer) -> SimulatorServer:
    """conftest's fresh simulator, with batches that take 0.2 s."""
    sim.app.apply_config({"batch_turnaround_seconds": 0.2})
    return sim


def run(base_url: str, scenario: Callable[[AnthropicBatchClient], Awaitable[T]]) -> T:
    """Run ``scenario`` with an adapter over the provider client the workers would use."""

    async def main() -> T:
        provider = ProviderConfig(name="claude", kind="anthropic", base_url=base_url)
        async with make_anthropic_client(provider) as client:
            return await scenario(AnthropicBatchClient(client))

    return asyncio.run(main())


def mocked(handler: Callable[[httpx.Request], httpx.Response],
           scenario: Callable[[AnthropicBatchClient], Awaitable[T]]) -> T:
    async def main() -> T:
        async with httpx.AsyncClient(base_url="http://upstream/v1/", transport=httpx.MockTransport(handler)) as client:
            return await scenario(AnthropicBatchClient(client))

    return asyncio.run(main())


def chat_lines(count: int, prefix: str = "r", text: str = "hello", **extra: Any) -> list[BatchLine]:
    body = {"model": "claude-haiku-4-5", "messages": [{"role": "user", "content": text}], **extra}
    return [(f"{prefix}{i}", CHAT_URL, body) for i in range(count)]


async def submit_and_collect(adapter: AnthropicBatchClient, lines: list[BatchLine]
                             ) -> tuple[RemoteBatch, dict[str, LineResult]]:
    remote = await until_ended(adapter, await adapter.submit(lines, CHAT_URL))  # type: ignore[arg-type]
    return remote, await adapter.results(remote)


def test_the_interface_is_native_batch_clients() -> None:
    def public(cls: type) -> dict[str, inspect.Signature]:
        return {name: inspect.signature(member) for name, member in vars(cls).items()
                if callable(member) and (not name.startswith("_") or name == "__init__")}

    assert public(AnthropicBatchClient) == public(NativeBatchClient)


def test_round_trip_maps_every_line_by_custom_id(batch_sim: SimulatorServer) -> None:
    odd = ("line 1/ü", "b64-looks-encoded", "x" * 64)
    lines = [*chat_lines(3), *[(cid, CHAT_URL, body) for cid, (_, _, body) in zip(odd, chat_lines(3), strict=True)]]
    remote, results = run(batch_sim.base_url, lambda a: submit_and_collect(a, lines))
    assert remote.status == "completed" and (remote.total, remote.completed, remote.failed) == (6, 6, 0)
    assert remote.created_at is not None and remote.expires_at is not None and remote.expires_at > remote.created_at
    assert sorted(results) == sorted(["r0", "r1", "r2", *odd])
    line = results["line 1/ü"]
    assert line.succeeded and not line.retryable and line.status_code == 200 and line.error_code is None
    body = orjson.loads(line.body or "")
    assert body["object"] == "chat.completion" and body["choices"][0]["message"]["content"].endswith("hello")
    assert body["choices"][0]["finish_reason"] == "stop"
    assert line.input_tokens == body["usage"]["prompt_tokens"] > 0
    assert line.output_tokens == body["usage"]["completion_tokens"] > 0
    assert batch_sim.stats.native_batches == 1 and batch_sim.stats.native_batch_lines == 6


def test_partial_failure_sorts_retryable_and_final_lines(batch_sim: SimulatorServer) -> None:
    batch_sim.app.apply_config({"error_rate": 0.5, "seed": 11})
    lines = [*chat_lines(16), *chat_lines(1, prefix="bad", text="__sim_error_400__")]
    remote, results = run(batch_sim.base_url, lambda a: submit_and_collect(a, lines))
    assert remote.status == "completed" and len(results) == 17
    failed = [r for r in results.values() if not r.succeeded]
    assert len(failed) == remote.failed and 0 < remote.failed < 17
    bad = results["bad0"]
    assert bad.status_code == 400 and not bad.retryable and bad.request_id is not None
    assert orjson.loads(bad.body or "")["error"]["type"] == "invalid_request_error"
    upstream = [r for r in failed if r.custom_id != "bad0"]
    assert upstream and all(r.status_code == 500 and r.retryable and r.input_tokens == 0 for r in upstream)
    assert all(orjson.loads(r.body or "")["error"]["type"] == "api_error" for r in upstream)


def test_lines_that_cannot_be_sent_do_not_sink_the_batch(batch_sim: SimulatorServer) -> None:
    lines = [*chat_lines(2), *chat_lines(1, prefix="n", n=2), ("é" * 30, CHAT_URL, chat_lines(1)[0][2])]

    async def scenario(adapter: AnthropicBatchClient) -> tuple[RemoteBatch, dict[str, LineResult]]:
        remote = await until_ended(adapter, await adapter.submit(lines, CHAT_URL))  # type: ignore[arg-type]
        results = await adapter.results(remote)
        assert await adapter.results(remote) == {k: v for k, v in results.items() if v.status_code != 400}
        return remote, results

    remote, results = run(batch_sim.base_url, scenario)
    assert (remote.total, remote.completed, remote.failed) == (4, 2, 2) and batch_sim.stats.native_batch_lines == 2
    refused = results["n0"]
    assert refused.status_code == 400 and not refused.retryable
    assert orjson.loads(refused.body or "")["error"]["code"] == "unsupported_parameter"
    assert orjson.loads(results["é" * 30].body or "")["error"]["param"] == "custom_id"
    with pytest.raises(TerminalUpstream) as nothing:
        run(batch_sim.base_url, lambda a: a.submit(chat_lines(2, n=2), CHAT_URL))
    assert nothing.value.status == 400 and batch_sim.stats.native_batches == 1


def test_expired_lines_come_back_as_batch_expired(batch_sim: SimulatorServer) -> None:
    batch_sim.app.apply_config({"batch_turnaround_seconds": 0.4, "batch_expire_after_seconds": 0.15})
    remote, results = run(batch_sim.base_url, lambda a: submit_and_collect(a, chat_lines(8)))
    assert remote.status == "expired" and (remote.completed, remote.failed) == (3, 5)
    assert [cid for cid, r in sorted(results.items()) if r.succeeded] == ["r0", "r1", "r2"]
    expired = results["r7"]
    assert expired.error_code == "batch_expired" and expired.retryable and expired.status_code is None
    assert expired.body is None and expired.error_message


def test_cancel(batch_sim: SimulatorServer) -> None:
    async def scenario(adapter: AnthropicBatchClient) -> None:
        batch_sim.config.batch_turnaround_seconds = 60.0
        remote_id = await adapter.submit(chat_lines(3), CHAT_URL, metadata={"batch": "local-1"})
        assert (await adapter.poll(remote_id)).status == "in_progress"
        assert (await adapter.cancel(remote_id)).status == "cancelling"
        cancelled = await until_ended(adapter, remote_id)  # type: ignore[arg-type]
        assert cancelled.status == "cancelled" and (cancelled.total, cancelled.failed) == (3, 3)
        results = await adapter.results(cancelled)
        assert {r.error_code for r in results.values()} == {"batch_cancelled"}
        assert not any(r.retryable for r in results.values())
        with pytest.raises(TerminalUpstream) as refused:
            await adapter.cancel(remote_id)
        assert refused.value.status == 400 and "already ended" in (refused.value.body or "")
        with pytest.raises(TerminalUpstream) as missing:
            await adapter.poll("msgbatch_nope")
        assert missing.value.status == 404 and missing.value.request_id is not None
        await adapter.delete_file("anything")

    run(batch_sim.base_url, scenario)


def test_arguments_checked_before_any_call(batch_sim: SimulatorServer) -> None:
    with pytest.raises(ValueError):
        run(batch_sim.base_url, lambda a: a.submit([], CHAT_URL))
    with pytest.raises(ValueError, match="not the batch endpoint"):
        run(batch_sim.base_url, lambda a: a.submit([("a", "/v1/embeddings", {})], CHAT_URL))
    with pytest.raises(TerminalUpstream) as embeddings:
        run(batch_sim.base_url, lambda a: a.submit([("a", "/v1/embeddings", {})], "/v1/embeddings"))
    assert embeddings.value.status == 400
    with pytest.raises(TerminalUpstream):
        run(batch_sim.base_url, lambda a: a.upload(b"{}\n"))
    assert batch_sim.stats.native_batches == 0


def test_custom_ids_travel_encoded_when_anthropic_would_refuse_them() -> None:
    for custom_id in ("req-1_A", "a.b", "line 1", "b64-x", "日本", "x" * 64, "y" * 45):
        remote = remote_custom_id(custom_id)
        assert remote is not None and len(remote) <= 64 and local_custom_id(remote) == custom_id
    assert remote_custom_id("req-1_A") == "req-1_A"
    assert remote_custom_id("x" * 65) is None and remote_custom_id("z" * 46 + ".") is None


def test_http_failures_and_result_lines() -> None:
    def overloaded(request: httpx.Request) -> httpx.Response:
        return httpx.Response(529, headers={"retry-after": "2"},
                              json={"type": "error", "error": {"type": "overloaded_error", "message": "busy"}})

    with pytest.raises(RetryableUpstream) as busy:
        mocked(overloaded, lambda a: a.poll("msgbatch_1"))
    assert busy.value.status == 529 and busy.value.delay == 2.0

    with pytest.raises(RetryableUpstream, match="not a Message Batch"):
        mocked(lambda request: httpx.Response(200, text="ok"), lambda a: a.poll("msgbatch_1"))

    error = {"type": "error", "error": {"type": "overloaded_error", "message": "busy"}, "request_id": "req_1"}
    line = parse_result(orjson.dumps({"custom_id": "a", "result": {"type": "errored", "error": error}}).decode())
    assert line.status_code == 529 and line.retryable and line.request_id == "req_1"
    with pytest.raises(RetryableUpstream, match="not a result"):
        parse_result('{"custom_id": "a"}')
    with pytest.raises(RetryableUpstream, match="unknown type"):
        parse_result('{"custom_id": "a", "result": {"type": "weird"}}')

    ended = {"id": "msgbatch_1", "processing_status": "ended", "cancel_initiated_at": None,
             "request_counts": {"processing": 0, "succeeded": 2, "errored": 1, "canceled": 0, "expired": 0}}
    assert (remote_batch(ended).status, remote_batch(ended).failed) == ("completed", 1)
    assert remote_batch({**ended, "cancel_initiated_at": "2026-01-01T00:00:00Z"}).status == "cancelled"
    assert remote_batch({**ended, "processing_status": "canceling"}).status == "cancelling"
