"""The simulator's Anthropic side over real HTTP: Messages shapes, errors, limits, injected failures, stats,
and the Message Batches lifecycle."""

from __future__ import annotations

import time
from typing import Any

import httpx
import orjson
import pytest

from simulator import SimulatorServer

MESSAGES = [{"role": "user", "content": "Tell me about queues please"}]


def message(client: httpx.Client, **extra: Any) -> httpx.Response:
    body = {"model": "claude-sonnet-4-5", "max_tokens": 256, "messages": MESSAGES, **extra}
    return client.post("/messages", json=body)


def test_message_is_deterministic_with_usage(sim: SimulatorServer, client: httpx.Client) -> None:
    first, second = message(client, system="Be brief."), message(client, system="Be brief.")
    assert first.status_code == 200 and first.headers["request-id"].startswith("req_")
    assert "x-request-id" not in first.headers and "openai-version" not in first.headers
    body = first.json()
    assert body["type"] == "message" and body["role"] == "assistant" and body["id"].startswith("msg_")
    assert body["model"] == "claude-sonnet-4-5" and body["stop_reason"] == "end_turn"
    assert body["stop_sequence"] is None
    text = body["content"][0]["text"]
    assert body["content"][0]["type"] == "text" and text.endswith("queues please")
    assert text == second.json()["content"][0]["text"] != message(client).json()["content"][0]["text"]
    usage = body["usage"]
    assert usage["input_tokens"] > 0 and usage["output_tokens"] > 0 and usage["cache_read_input_tokens"] == 0
    stats = sim.stats
    assert stats.by_endpoint["/v1/messages"] == 3 and stats.successes == 3
    assert stats.prompt_tokens >= 3 * usage["input_tokens"] - 10


def test_stream_sends_anthropics_events_that_rebuild_the_message(client: httpx.Client) -> None:
    whole = message(client).json()
    resp = message(client, stream=True)
    assert resp.headers["content-type"].startswith("text/event-stream") and "request-id" in resp.headers
    events = [(block.split("\n")[0].removeprefix("event: "), orjson.loads(block.split("\n")[1].removeprefix("data: ")))
              for block in resp.text.strip().split("\n\n")]
    assert all(name == data["type"] for name, data in events)
    assert [name for name, _ in events[:3]] == ["message_start", "ping", "content_block_start"]
    assert [name for name, _ in events[-3:]] == ["content_block_stop", "message_delta", "message_stop"]
    text = "".join(d["delta"]["text"] for n, d in events if n == "content_block_delta")
    assert text == whole["content"][0]["text"] and len([n for n, _ in events if n == "content_block_delta"]) > 3
    assert events[0][1]["message"]["usage"]["input_tokens"] == whole["usage"]["input_tokens"]
    assert events[-2][1]["usage"]["output_tokens"] == whole["usage"]["output_tokens"]
    assert events[-2][1]["delta"]["stop_reason"] == "end_turn"


def test_max_tokens_stop_sequences_and_forced_tools(client: httpx.Client) -> None:
    short = message(client, max_tokens=2).json()
    assert short["stop_reason"] == "max_tokens" and short["usage"]["output_tokens"] == 2
    stopped = message(client, stop_sequences=["about"]).json()
    assert stopped["stop_reason"] == "stop_sequence" and stopped["stop_sequence"] == "about"
    assert "about" not in stopped["content"][0]["text"]
    tools = [{"name": "classify", "input_schema": {"type": "object", "properties": {
        "label": {"type": "string", "enum": ["a", "b"]}}}}, {"name": "other", "input_schema": {"type": "object"}}]
    called = message(client, tools=tools, tool_choice={"type": "tool", "name": "classify"}).json()
    assert called["stop_reason"] == "tool_use"
    use = called["content"][0]
    assert use["type"] == "tool_use" and use["name"] == "classify" and use["input"]["label"] in ("a", "b")
    assert use["id"].startswith("toolu_")
    assert message(client, tools=tools).json()["content"][0]["type"] == "text"


@pytest.mark.parametrize(("change", "expected"), [
    ({"max_tokens": None}, "max_tokens: Field required"),
    ({"model": None}, "model: Field required"),
    ({"messages": []}, "messages: at least one message is required"),
    ({"messages": [{"role": "system", "content": "x"}]}, "messages.0.role"),
    ({"tools": [{"name": "t"}], "tool_choice": {"type": "tool", "name": "nope"}}, "tool_choice.name"),
    ({"system": "__sim_error_400__"}, "Simulated invalid request"),
])
def test_invalid_requests_answer_anthropic_errors(client: httpx.Client, change: dict[str, Any],
                                                   expected: str) -> None:
    body = {"model": "claude-sonnet-4-5", "max_tokens": 256, "messages": MESSAGES, **change}
    resp = client.post("/messages", json={k: v for k, v in body.items() if v is not None})
    assert resp.status_code == 400 and resp.headers["request-id"]
    error = resp.json()
    assert error["type"] == "error" and error["error"]["type"] == "invalid_request_error"
    assert expected in error["error"]["message"]
    not_json = client.post("/messages", content=b"{", headers={"content-type": "application/json"})
    assert not_json.status_code == 400 and not_json.json()["type"] == "error"


def test_rate_limits_answer_429_with_anthropic_headers(sim: SimulatorServer, client: httpx.Client) -> None:
    sim.app.apply_config({"rpm": 2})
    ok = message(client)
    assert ok.headers["anthropic-ratelimit-requests-limit"] == "2"
    assert ok.headers["anthropic-ratelimit-requests-remaining"] == "1"
    assert ok.headers["anthropic-ratelimit-requests-reset"].endswith("Z")
    assert message(client).status_code == 200
    limited = message(client)
    assert limited.status_code == 429 and int(limited.headers["retry-after"]) >= 1
    assert "retry-after-ms" not in limited.headers and "x-ratelimit-limit-requests" not in limited.headers
    assert limited.json()["error"]["type"] == "rate_limit_error"
    assert sim.stats.rate_limited == 1


def test_injected_failures_follow_the_shared_config(sim: SimulatorServer, client: httpx.Client) -> None:
    sim.app.apply_config({"error_rate": 1.0, "error_kinds": ["500"]})
    failed = message(client)
    assert failed.status_code == 500 and failed.json()["error"]["type"] == "api_error"
    sim.app.apply_config({"error_kinds": ["503"]})
    overloaded = message(client)
    assert overloaded.status_code == 503 and overloaded.json()["error"]["type"] == "overloaded_error"
    sim.app.apply_config({"error_kinds": ["drop"]})
    with pytest.raises(httpx.RemoteProtocolError):
        message(client)
    assert sim.stats.injected_errors == 3 and sim.stats.dropped == 1


def requests_of(n: int, prefix: str = "r", text: str = "hello") -> list[dict[str, Any]]:
    params = {"model": "claude-haiku-4-5", "max_tokens": 64, "messages": [{"role": "user", "content": text}]}
    return [{"custom_id": f"{prefix}{i}", "params": params} for i in range(n)]


def wait_ended(client: httpx.Client, batch_id: str, timeout: float = 5.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while (batch := client.get(f"/messages/batches/{batch_id}").json())["processing_status"] != "ended":
        assert time.monotonic() < deadline, batch
        time.sleep(0.02)
    return batch


def results_of(client: httpx.Client, batch_id: str) -> dict[str, dict[str, Any]]:
    resp = client.get(f"/messages/batches/{batch_id}/results")
    assert resp.status_code == 200, resp.text
    lines = [orjson.loads(line) for line in resp.content.splitlines() if line.strip()]
    return {line["custom_id"]: line["result"] for line in lines}


def test_batch_runs_every_request_like_the_realtime_endpoint(sim: SimulatorServer, client: httpx.Client) -> None:
    requests = [*requests_of(3), *requests_of(1, prefix="bad", text="__sim_error_400__")]
    created = client.post("/messages/batches", json={"requests": requests}).json()
    assert created["type"] == "message_batch" and created["id"].startswith("msgbatch_")
    assert created["processing_status"] == "in_progress" and created["results_url"] is None
    assert created["request_counts"]["processing"] == 4
    early = client.get(f"/messages/batches/{created['id']}/results")
    assert early.status_code == 400 and early.json()["error"]["type"] == "invalid_request_error"
    ended = wait_ended(client, created["id"])
    assert ended["request_counts"] == {"processing": 0, "succeeded": 3, "errored": 1, "canceled": 0, "expired": 0}
    assert ended["ended_at"] and ended["results_url"].endswith(f"/v1/messages/batches/{created['id']}/results")
    results = results_of(client, created["id"])
    realtime = client.post("/messages", json=requests[0]["params"]).json()
    assert results["r0"]["type"] == "succeeded"
    assert results["r0"]["message"]["content"] == realtime["content"]
    assert results["bad0"]["type"] == "errored"
    assert results["bad0"]["error"]["error"]["type"] == "invalid_request_error"
    assert sim.stats.native_batches == 1 and sim.stats.native_batch_lines == 4
    assert sim.stats.native_batch_failed_lines == 1
    listed = client.get("/messages/batches", params={"limit": 1}).json()
    assert listed["data"][0]["id"] == created["id"] and listed["first_id"] == created["id"]


def test_batch_failures_expiry_and_cancel(sim: SimulatorServer, client: httpx.Client) -> None:
    sim.app.apply_config({"error_rate": 0.5, "seed": 3})
    flaky = client.post("/messages/batches", json={"requests": requests_of(16)}).json()
    counts = wait_ended(client, flaky["id"])["request_counts"]
    assert 0 < counts["errored"] < 16 and counts["succeeded"] + counts["errored"] == 16
    errored = [r for r in results_of(client, flaky["id"]).values() if r["type"] == "errored"]
    assert {r["error"]["error"]["type"] for r in errored} == {"api_error"}

    sim.app.apply_config({"error_rate": 0.0, "batch_turnaround_seconds": 0.4, "batch_expire_after_seconds": 0.15})
    late = client.post("/messages/batches", json={"requests": requests_of(8)}).json()
    ended = wait_ended(client, late["id"])
    assert ended["request_counts"]["expired"] == 5 and ended["request_counts"]["succeeded"] == 3
    assert sorted(r["type"] for r in results_of(client, late["id"]).values()) == ["expired"] * 5 + ["succeeded"] * 3

    sim.app.apply_config({"batch_turnaround_seconds": 60.0, "batch_expire_after_seconds": None})
    slow = client.post("/messages/batches", json={"requests": requests_of(3)}).json()
    cancelling = client.post(f"/messages/batches/{slow['id']}/cancel").json()
    assert cancelling["processing_status"] == "canceling" and cancelling["cancel_initiated_at"]
    ended = wait_ended(client, slow["id"])
    assert ended["request_counts"]["canceled"] == 3
    assert {r["type"] for r in results_of(client, slow["id"]).values()} == {"canceled"}
    refused = client.post(f"/messages/batches/{slow['id']}/cancel")
    assert refused.status_code == 400 and refused.json()["type"] == "error"


@pytest.mark.parametrize(("body", "expected"), [
    ({}, "requests: Field required"),
    ({"requests": []}, "at least one request"),
    ({"requests": [{"custom_id": "a b", "params": {}}]}, "custom_id"),
    ({"requests": [*requests_of(1), *requests_of(1)]}, "Duplicate custom_id"),
    ({"requests": [{"custom_id": "a"}]}, "params: Field required"),
])
def test_batch_create_refuses_malformed_requests(client: httpx.Client, body: dict[str, Any], expected: str) -> None:
    resp = client.post("/messages/batches", json=body)
    assert resp.status_code == 400 and expected in resp.json()["error"]["message"]
    missing = client.get("/messages/batches/msgbatch_nope")
    assert missing.status_code == 404 and missing.json()["error"]["type"] == "not_found_error"
