"""The native batch adapters (OpenAI Files + Batches: ``NativeBatchClient``; Anthropic Message Batches:
``AnthropicBatchClient``) against the real simulator, and MockTransport for single HTTP edge cases. Shared
behaviour runs over both (the ``adapter`` fixture); what only one adapter does follows."""

from __future__ import annotations

import asyncio
import inspect
import socket
from typing import Any

import httpx
import orjson
import pytest

from broker.errors import RetryableUpstream, TerminalUpstream
from providers.anthropic_batch import (
    AnthropicBatchClient,
    local_custom_id,
    parse_result,
    remote_batch,
    remote_custom_id,
)
from providers.base import BatchLine, LineResult, RemoteBatch
from providers.openai_batch import NativeBatchClient, encode_lines, parse_result_line
from simulator import SimulatorServer
from tests.unit.conftest import ANTHROPIC, CHAT_URL, OPENAI, BatchClient, NativeAdapter


async def until_ended(client: BatchClient, remote_id: str, timeout: float = 5.0) -> RemoteBatch:
    deadline = asyncio.get_running_loop().time() + timeout
    while not (remote := await client.poll(remote_id)).terminal:
        assert asyncio.get_running_loop().time() < deadline, remote
        await asyncio.sleep(0.02)
    return remote


async def submit_and_collect(client: BatchClient, lines: list[BatchLine]) -> tuple[RemoteBatch, dict[str, LineResult]]:
    remote = await until_ended(client, await client.submit(lines, CHAT_URL))
    return remote, await client.results(remote)


# --- both adapters ------------------------------------------------------------------------------------------------


def test_round_trip_maps_every_line_by_custom_id(sim: SimulatorServer, adapter: NativeAdapter) -> None:
    odd = ("line 1/ü", "b64-looks-encoded", "x" * 64)  # Anthropic refuses these ids: they travel encoded
    lines = [*adapter.chat_lines(3), *[(cid, CHAT_URL, body) for cid, (_, _, body) in
                                       zip(odd, adapter.chat_lines(3), strict=True)]]
    remote, results = adapter.run(sim.base_url, lambda c: submit_and_collect(c, lines))
    assert remote.status == "completed" and (remote.total, remote.completed, remote.failed) == (6, 6, 0)
    assert remote.created_at is not None and remote.expires_at is not None and remote.expires_at > remote.created_at
    assert sorted(results) == sorted(["r0", "r1", "r2", *odd])
    line = results["line 1/ü"]
    assert line.succeeded and not line.retryable and line.status_code == 200 and line.error_code is None
    if adapter.line_request_ids:
        assert line.request_id is not None and line.request_id.startswith("req_")
    else:
        assert line.request_id is None
    body = orjson.loads(line.body or "")
    assert body["object"] == "chat.completion" and body["choices"][0]["message"]["content"].endswith("hello")
    assert body["choices"][0]["finish_reason"] == "stop"
    assert line.input_tokens == body["usage"]["prompt_tokens"] > 0
    assert line.output_tokens == body["usage"]["completion_tokens"] > 0
    if adapter.batch_usage:
        assert remote.input_tokens == sum(r.input_tokens for r in results.values())
        assert remote.output_tokens == sum(r.output_tokens for r in results.values())
    else:
        assert (remote.input_tokens, remote.output_tokens) == (0, 0)
    assert sim.stats.native_batches == 1 and sim.stats.native_batch_lines == 6


def test_partial_failure_sorts_retryable_and_final_lines(sim: SimulatorServer, adapter: NativeAdapter) -> None:
    sim.app.apply_config({"error_rate": 0.5, "seed": 11})
    lines = [*adapter.chat_lines(16), *adapter.chat_lines(1, prefix="bad", text="__sim_error_400__")]
    remote, results = adapter.run(sim.base_url, lambda c: submit_and_collect(c, lines))
    assert remote.status == "completed" and len(results) == 17
    failed = [r for r in results.values() if not r.succeeded]
    assert len(failed) == remote.failed and 0 < remote.failed < 17
    bad = results["bad0"]
    assert bad.status_code == 400 and not bad.retryable and not bad.succeeded and bad.request_id is not None
    error = orjson.loads(bad.body or "")["error"]
    assert {key: error[key] for key in adapter.bad_request_error} == adapter.bad_request_error
    upstream = [r for r in failed if r.custom_id != "bad0"]
    assert upstream and all(r.status_code == 500 and r.retryable and r.input_tokens == 0 for r in upstream)
    assert all(orjson.loads(r.body or "")["error"]["type"] == adapter.server_error_type for r in upstream)


def test_expired_lines_come_back_as_batch_expired(sim: SimulatorServer, adapter: NativeAdapter) -> None:
    sim.app.apply_config({"batch_turnaround_seconds": 0.4, "batch_expire_after_seconds": 0.15})
    remote, results = adapter.run(sim.base_url, lambda c: submit_and_collect(c, adapter.chat_lines(8)))
    assert remote.status == "expired" and (remote.completed, remote.failed) == (3, 5)
    assert [cid for cid, r in sorted(results.items()) if r.succeeded] == ["r0", "r1", "r2"]
    expired = results["r7"]
    assert expired.error_code == "batch_expired" and expired.retryable and expired.status_code is None
    assert expired.body is None and expired.error_message


def test_cancel(sim: SimulatorServer, adapter: NativeAdapter) -> None:
    async def scenario(client: BatchClient) -> RemoteBatch:
        sim.config.batch_turnaround_seconds = 60.0
        remote_id = await client.submit(adapter.chat_lines(3), CHAT_URL, metadata={"batch": "local-1"})
        assert (await client.poll(remote_id)).status == "in_progress"
        assert (await client.cancel(remote_id)).status == "cancelling"
        cancelled = await until_ended(client, remote_id)
        assert cancelled.status == "cancelled" and (cancelled.total, cancelled.failed) == (3, 3)
        results = await client.results(cancelled)
        assert {r.error_code for r in results.values()} == {"batch_cancelled"}
        assert not any(r.retryable for r in results.values())
        with pytest.raises(TerminalUpstream) as refused:
            await client.cancel(remote_id)
        assert refused.value.status == 400 and adapter.cancel_refused in (refused.value.body or "")
        with pytest.raises(TerminalUpstream) as missing:
            await client.poll(f"{adapter.batch_prefix}nope")
        assert missing.value.status == 404 and missing.value.request_id is not None
        if adapter.input_files:
            assert cancelled.input_file_id is not None
            await client.delete_file(cancelled.input_file_id)
            with pytest.raises(TerminalUpstream):
                await client.delete_file(cancelled.input_file_id)
        else:  # nothing to delete: deleting does nothing
            assert cancelled.input_file_id is None
            await client.delete_file("anything")
        return cancelled

    adapter.run(sim.base_url, scenario)


def test_arguments_checked_before_any_call(sim: SimulatorServer, adapter: NativeAdapter) -> None:
    with pytest.raises(ValueError):
        adapter.run(sim.base_url, lambda c: c.submit([], CHAT_URL))
    with pytest.raises(ValueError, match="not the batch endpoint"):
        adapter.run(sim.base_url, lambda c: c.submit([("a", "/v1/embeddings", {})], CHAT_URL))
    assert sim.stats.native_batches == 0


def test_http_failures_are_classified_like_the_realtime_adapter(adapter: NativeAdapter) -> None:
    poll = f"{adapter.batch_prefix}1"

    def limited(request: httpx.Request) -> httpx.Response:
        return httpx.Response(429, headers={"retry-after": "7"}, json={"error": {"message": "slow down"}})

    with pytest.raises(RetryableUpstream) as slow:
        adapter.mocked(limited, lambda c: c.poll(poll))
    assert slow.value.status == 429 and slow.value.delay == 7.0

    def overloaded(request: httpx.Request) -> httpx.Response:
        return httpx.Response(529, headers={"retry-after": "2"},
                              json={"type": "error", "error": {"type": "overloaded_error", "message": "busy"}})

    with pytest.raises(RetryableUpstream) as busy:
        adapter.mocked(overloaded, lambda c: c.poll(poll))
    assert busy.value.status == 529 and busy.value.delay == 2.0

    def html(request: httpx.Request) -> httpx.Response:
        return httpx.Response(503, text="<html>bad gateway</html>")

    with pytest.raises(RetryableUpstream) as unavailable:
        adapter.mocked(html, lambda c: c.poll(poll))
    assert unavailable.value.status == 503 and orjson.loads(unavailable.value.body or "")["error"]["message"]

    with pytest.raises(RetryableUpstream, match=adapter.not_a_batch):
        adapter.mocked(lambda request: httpx.Response(200, text="ok"), lambda c: c.poll(poll))

    def broken_download(request: httpx.Request) -> httpx.Response:
        return httpx.Response(500, json={"error": {"message": "oops"}})

    remote = RemoteBatch(id=poll, status="completed", output_file_id="file-out")
    with pytest.raises(RetryableUpstream) as download:
        adapter.mocked(broken_download, lambda c: c.results(remote))
    assert download.value.status == 500


def test_unreachable_provider_is_retryable(adapter: NativeAdapter) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(RetryableUpstream) as refused:
        adapter.run(f"http://127.0.0.1:{port}/v1", lambda c: c.poll(f"{adapter.batch_prefix}1"))
    assert refused.value.code == "upstream_connection_error"


# --- OpenAI Files + Batches only ----------------------------------------------------------------------------------


def test_duplicate_custom_ids_fail_the_whole_batch(sim: SimulatorServer) -> None:
    async def scenario(client: BatchClient) -> None:
        duplicate = [*OPENAI.chat_lines(2), *OPENAI.chat_lines(1)]
        remote = await until_ended(client, await client.submit(duplicate, CHAT_URL))
        assert remote.status == "failed" and remote.total == 0
        assert [(p.code, p.line) for p in remote.problems] == [("duplicate_custom_id", 3)]
        assert await client.results(remote) == {}

    OPENAI.run(sim.base_url, scenario)


def test_lines_are_encoded_for_the_batch_endpoint_only() -> None:
    assert encode_lines(OPENAI.chat_lines(1), CHAT_URL).endswith(b"\n")
    with pytest.raises(ValueError, match="not the batch endpoint"):
        encode_lines(OPENAI.chat_lines(1), "/v1/embeddings")


def test_a_failed_create_deletes_the_uploaded_file() -> None:
    calls: list[tuple[str, str]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append((request.method, request.url.path))
        if request.url.path == "/v1/files":
            assert b'name="purpose"' in request.content and b'"custom_id":"r0"' in request.content
            return httpx.Response(200, json={"id": "file-in", "object": "file"})
        if request.url.path == "/v1/batches":
            return httpx.Response(400, json={"error": {"message": "bad window", "param": "completion_window"}})
        return httpx.Response(200, json={"id": "file-in", "object": "file", "deleted": True})

    with pytest.raises(TerminalUpstream) as refused:
        OPENAI.mocked(handler, lambda c: c.submit(OPENAI.chat_lines(1), CHAT_URL, completion_window="1h"))
    assert refused.value.status == 400
    assert calls == [("POST", "/v1/files"), ("POST", "/v1/batches"), ("DELETE", "/v1/files/file-in")]


def test_result_lines_parse_both_shapes() -> None:
    ok: dict[str, Any] = {"id": "batch_req_1", "custom_id": "a", "error": None, "response": {
        "status_code": 200, "request_id": "req_1", "body": {"usage": {"input_tokens": 3, "output_tokens": 4}}}}
    parsed = parse_result_line(orjson.dumps(ok).decode())
    assert parsed.succeeded and (parsed.input_tokens, parsed.output_tokens) == (3, 4)
    gone = {"id": "batch_req_2", "custom_id": "b", "response": None,
            "error": {"code": "batch_expired", "message": "too late"}}
    expired = parse_result_line(orjson.dumps(gone).decode())
    assert expired.retryable and not expired.succeeded and expired.error_message == "too late"
    with pytest.raises(RetryableUpstream, match="not a result"):
        parse_result_line('{"id": "batch_req_3"}')


# --- Anthropic Message Batches only -------------------------------------------------------------------------------


def test_the_interface_is_native_batch_clients() -> None:
    def public(cls: type) -> dict[str, inspect.Signature]:
        return {name: inspect.signature(member) for name, member in vars(cls).items()
                if callable(member) and (not name.startswith("_") or name == "__init__")}

    assert public(AnthropicBatchClient) == public(NativeBatchClient)


def test_lines_that_cannot_be_sent_do_not_sink_the_batch(sim: SimulatorServer) -> None:
    lines = [*ANTHROPIC.chat_lines(2), *ANTHROPIC.chat_lines(1, prefix="n", n=2),
             ("é" * 30, CHAT_URL, ANTHROPIC.chat_lines(1)[0][2])]

    async def scenario(client: BatchClient) -> tuple[RemoteBatch, dict[str, LineResult]]:
        remote = await until_ended(client, await client.submit(lines, CHAT_URL))
        results = await client.results(remote)
        assert await client.results(remote) == {k: v for k, v in results.items() if v.status_code != 400}
        return remote, results

    remote, results = ANTHROPIC.run(sim.base_url, scenario)
    assert (remote.total, remote.completed, remote.failed) == (4, 2, 2) and sim.stats.native_batch_lines == 2
    refused = results["n0"]
    assert refused.status_code == 400 and not refused.retryable
    assert orjson.loads(refused.body or "")["error"]["code"] == "unsupported_parameter"
    assert orjson.loads(results["é" * 30].body or "")["error"]["param"] == "custom_id"
    with pytest.raises(TerminalUpstream) as nothing:
        ANTHROPIC.run(sim.base_url, lambda c: c.submit(ANTHROPIC.chat_lines(2, n=2), CHAT_URL))
    assert nothing.value.status == 400 and sim.stats.native_batches == 1


def test_chat_completions_only_and_no_files(sim: SimulatorServer) -> None:
    with pytest.raises(TerminalUpstream) as embeddings:
        ANTHROPIC.run(sim.base_url, lambda c: c.submit([("a", "/v1/embeddings", {})], "/v1/embeddings"))
    assert embeddings.value.status == 400
    with pytest.raises(TerminalUpstream):
        ANTHROPIC.run(sim.base_url, lambda c: c.upload(b"{}\n"))
    assert sim.stats.native_batches == 0


def test_custom_ids_travel_encoded_when_anthropic_would_refuse_them() -> None:
    for custom_id in ("req-1_A", "a.b", "line 1", "b64-x", "日本", "x" * 64, "y" * 45):
        remote = remote_custom_id(custom_id)
        assert remote is not None and len(remote) <= 64 and local_custom_id(remote) == custom_id
    assert remote_custom_id("req-1_A") == "req-1_A"
    assert remote_custom_id("x" * 65) is None and remote_custom_id("z" * 46 + ".") is None


def test_message_batch_result_lines_and_states() -> None:
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
