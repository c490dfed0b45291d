"""The native batch adapter against the real simulator (and MockTransport for single HTTP edge cases)."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import httpx
import orjson
import pytest

from broker.catalogue import ProviderConfig
from broker.errors import RetryableUpstream, TerminalUpstream
from providers.base import BatchLine, LineResult, RemoteBatch, make_client
from providers.openai_batch import NativeBatchClient, encode_lines, parse_result_line
from simulator import SimulatorServer

CHAT_URL = "/v1/chat/completions"
T = TypeVar("T")


def run(base_url: str, scenario: Callable[[NativeBatchClient], Awaitable[T]]) -> T:
    """Run ``scenario`` with an adapter over the provider client the workers would use."""

    async def main() -> T:
        async with make_client(ProviderConfig(name="sim", base_url=base_url)) as client:
            return await scenario(NativeBatchClient(client))

    return asyncio.run(main())


def mocked(handler: Callable[[httpx.Request], httpx.Response],
           scenario: Callable[[NativeBatchClient], Awaitable[T]]) -> T:
    async def main() -> T:
        transport = httpx.MockTransport(handler)
        async with httpx.AsyncClient(base_url="http://upstream/v1/", transport=transport) as client:
            return await scenario(NativeBatchClient(client))

    return asyncio.run(main())


def chat_lines(n: int, prefix: str = "r", text: str = "hello") -> list[BatchLine]:
    return [(f"{prefix}{i}", CHAT_URL, {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": text}]})
            for i in range(n)]


async def until_ended(adapter: NativeBatchClient, remote_id: str, timeout: float = 5.0) -> RemoteBatch:
    deadline = asyncio.get_running_loop().time() + timeout
    while not (remote := await adapter.poll(remote_id)).terminal:
        assert asyncio.get_running_loop().time() < deadline, remote
        await asyncio.sleep(0.02)
    return remote


async def submit_and_collect(adapter: NativeBatchClient, lines: list[BatchLine]
                             ) -> tuple[RemoteBatch, dict[str, LineResult]]:
    remote = await until_ended(adapter, await adapter.submit(lines, CHAT_URL))
    return remote, await adapter.results(remote)


def test_round_trip_maps_every_line_by_custom_id(sim: SimulatorServer) -> None:
    remote, results = run(sim.base_url, lambda a: submit_and_collect(a, chat_lines(5)))
    assert remote.status == "completed" and (remote.total, remote.completed, remote.failed) == (5, 5, 0)
    assert sorted(results) == [f"r{i}" for i in range(5)]
    line = results["r3"]
    assert line.succeeded and not line.retryable and line.status_code == 200 and line.error_code is None
    assert line.request_id is not None and line.request_id.startswith("req_")
    body = orjson.loads(line.body or "")
    assert body["object"] == "chat.completion" and body["choices"][0]["message"]["content"].endswith("hello")
    assert line.input_tokens == body["usage"]["prompt_tokens"] > 0
    assert line.output_tokens == body["usage"]["completion_tokens"] > 0
    assert remote.input_tokens == sum(r.input_tokens for r in results.values())
    assert remote.output_tokens == sum(r.output_tokens for r in results.values())
    assert sim.stats.native_batches == 1 and sim.stats.native_batch_lines == 5


def test_partial_failure_sorts_retryable_and_final_lines(sim: SimulatorServer) -> None:
    sim.app.apply_config({"error_rate": 0.5, "seed": 11})
    lines = [*chat_lines(16), *chat_lines(1, prefix="bad", text="__sim_error_400__")]
    remote, results = run(sim.base_url, lambda a: submit_and_collect(a, lines))
    assert remote.status == "completed" and len(results) == 17
    failed = [r for r in results.values() if not r.succeeded]
    assert len(failed) == remote.failed and 0 < remote.failed < 17
    bad = results["bad0"]
    assert bad.status_code == 400 and not bad.retryable and not bad.succeeded
    assert orjson.loads(bad.body or "")["error"]["code"] == "simulated_error"
    upstream = [r for r in failed if r.custom_id != "bad0"]
    assert upstream and all(r.status_code == 500 and r.retryable and r.input_tokens == 0 for r in upstream)
    assert all(orjson.loads(r.body or "")["error"]["type"] == "server_error" for r in upstream)


def test_expired_lines_come_back_as_batch_expired(sim: SimulatorServer) -> None:
    sim.app.apply_config({"batch_turnaround_seconds": 0.4, "batch_expire_after_seconds": 0.15})
    remote, results = run(sim.base_url, lambda a: submit_and_collect(a, chat_lines(8)))
    assert remote.status == "expired" and (remote.completed, remote.failed) == (3, 5)
    assert [cid for cid, r in sorted(results.items()) if r.succeeded] == ["r0", "r1", "r2"]
    expired = results["r7"]
    assert expired.error_code == "batch_expired" and expired.retryable and expired.status_code is None
    assert expired.body is None and expired.error_message


def test_invalid_input_and_cancel(sim: SimulatorServer) -> None:
    async def scenario(adapter: NativeBatchClient) -> None:
        duplicate = [*chat_lines(2), *chat_lines(1)]
        remote = await until_ended(adapter, await adapter.submit(duplicate, CHAT_URL))
        assert remote.status == "failed" and remote.total == 0
        assert [(p.code, p.line) for p in remote.problems] == [("duplicate_custom_id", 3)]
        assert await adapter.results(remote) == {}

        sim.config.batch_turnaround_seconds = 60.0
        remote_id = await adapter.submit(chat_lines(3), CHAT_URL, metadata={"batch": "local-1"})
        assert (await adapter.cancel(remote_id)).status == "cancelling"
        cancelled = await until_ended(adapter, remote_id)
        assert cancelled.status == "cancelled"
        results = await adapter.results(cancelled)
        assert {r.error_code for r in results.values()} == {"batch_cancelled"}
        assert not any(r.retryable for r in results.values())
        with pytest.raises(TerminalUpstream) as refused:
            await adapter.cancel(remote_id)
        assert refused.value.status == 400 and "Cannot cancel" in (refused.value.body or "")
        with pytest.raises(TerminalUpstream) as missing:
            await adapter.poll("batch_nope")
        assert missing.value.status == 404 and missing.value.request_id is not None
        assert cancelled.input_file_id is not None
        await adapter.delete_file(cancelled.input_file_id)
        with pytest.raises(TerminalUpstream):
            await adapter.delete_file(cancelled.input_file_id)

    run(sim.base_url, scenario)


def test_lines_must_target_the_batch_endpoint(sim: SimulatorServer) -> None:
    assert encode_lines(chat_lines(1), CHAT_URL).endswith(b"\n")
    with pytest.raises(ValueError, match="not the batch endpoint"):
        encode_lines(chat_lines(1), "/v1/embeddings")
    with pytest.raises(ValueError):
        run(sim.base_url, lambda a: a.submit([], CHAT_URL))


def test_http_failures_are_classified_like_the_realtime_adapter() -> None:
    def limited(request: httpx.Request) -> httpx.Response:
        return httpx.Response(429, headers={"retry-after": "7"}, json={"error": {"message": "slow down"}})

    with pytest.raises(RetryableUpstream) as slow:
        mocked(limited, lambda a: a.poll("batch_1"))
    assert slow.value.status == 429 and slow.value.delay == 7.0

    def html(request: httpx.Request) -> httpx.Response:
        return httpx.Response(503, text="<html>bad gateway</html>")

    with pytest.raises(RetryableUpstream) as unavailable:
        mocked(html, lambda a: a.poll("batch_1"))
    assert unavailable.value.status == 503 and orjson.loads(unavailable.value.body or "")["error"]["message"]

    with pytest.raises(RetryableUpstream, match="not a JSON object"):
        mocked(lambda request: httpx.Response(200, text="ok"), lambda a: a.poll("batch_1"))

    def broken_download(request: httpx.Request) -> httpx.Response:
        return httpx.Response(500, json={"error": {"message": "oops"}})

    remote = RemoteBatch(id="batch_1", status="completed", output_file_id="file-out")
    with pytest.raises(RetryableUpstream) as download:
        mocked(broken_download, lambda a: a.results(remote))
    assert download.value.status == 500


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
        mocked(handler, lambda a: a.submit(chat_lines(1), CHAT_URL, completion_window="1h"))
    assert refused.value.status == 400
    assert calls == [("POST", "/v1/files"), ("POST", "/v1/batches"), ("DELETE", "/v1/files/file-in")]


def test_unreachable_provider_is_retryable() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(RetryableUpstream) as refused:
        run(f"http://127.0.0.1:{port}/v1", lambda a: a.poll("batch_1"))
    assert refused.value.code == "upstream_connection_error"


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
