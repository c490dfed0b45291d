"""The simulator's native batch API: Files + Batches over real HTTP with the official SDK, and its lifecycle."""

from __future__ import annotations

from typing import Any, Final

import httpx
import openai
import orjson
import pytest

from simulator import SimulatorConfig, SimulatorServer
from simulator.native_batch import NativeBatchStore, RunSettings, StoredFile
from simulator.stats import SimulatorStats
from tests.harness import jsonl, upload, wait_for

CHAT_URL: Final = "/v1/chat/completions"


def request_line(custom_id: str, text: str = "hello", url: str = CHAT_URL, **body: Any) -> dict[str, Any]:
    body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": text}], **body}
    return {"custom_id": custom_id, "method": "POST", "url": url, "body": body}


def start(sdk: openai.OpenAI, lines: list[Any], endpoint: str = CHAT_URL) -> str:
    file_id = upload(sdk, lines)
    created = sdk.batches.create(input_file_id=file_id, endpoint=endpoint,  # type: ignore[arg-type]
                                 completion_window="24h", metadata={"job": "test"})
    assert created.status == "validating" and created.input_file_id == file_id
    return created.id


def file_lines(sdk: openai.OpenAI, file_id: str | None) -> list[dict[str, Any]]:
    assert file_id is not None
    return [orjson.loads(line) for line in sdk.files.content(file_id).text.splitlines()]


def test_round_trip_with_the_sdk_matches_the_realtime_answers(sim: SimulatorServer, sdk: openai.OpenAI) -> None:
    lines = [request_line(f"req-{i}", f"question number {i}") for i in range(4)]
    batch_id = start(sdk, lines)
    running = sdk.batches.retrieve(batch_id)
    assert running.status == "in_progress" and running.request_counts is not None
    assert running.request_counts.total == 4 and running.output_file_id is None
    batch = wait_for(sdk, batch_id, timeout=5.0)
    assert batch.status == "completed" and batch.metadata == {"job": "test"} and batch.model == "gpt-4o-mini"
    assert batch.request_counts is not None and batch.request_counts.completed == 4
    assert batch.request_counts.failed == 0 and batch.error_file_id is None
    assert batch.completed_at is not None and batch.finalizing_at is not None and batch.in_progress_at is not None
    out = file_lines(sdk, batch.output_file_id)
    assert [line["custom_id"] for line in out] == ["req-0", "req-1", "req-2", "req-3"]
    realtime = sdk.chat.completions.create(model="gpt-4o-mini", messages=lines[2]["body"]["messages"])
    body = out[2]["response"]["body"]
    assert out[2]["id"].startswith("batch_req_") and out[2]["error"] is None
    assert out[2]["response"]["status_code"] == 200 and out[2]["response"]["request_id"].startswith("req_")
    assert body["choices"][0]["message"]["content"] == realtime.choices[0].message.content
    assert realtime.usage is not None and body["usage"]["prompt_tokens"] == realtime.usage.prompt_tokens
    usage = batch.usage
    assert usage is not None
    assert usage.input_tokens == sum(line["response"]["body"]["usage"]["prompt_tokens"] for line in out)
    assert usage.output_tokens == sum(line["response"]["body"]["usage"]["completion_tokens"] for line in out)
    assert usage.total_tokens == usage.input_tokens + usage.output_tokens
    output_file = sdk.files.retrieve(batch.output_file_id or "")
    assert output_file.purpose == "batch_output" and output_file.bytes > 0
    assert [b.id for b in sdk.batches.list(limit=5).data][0] == batch_id
    assert sim.stats.native_batches == 1 and sim.stats.native_batch_lines == 4
    assert sim.stats.requests == 1  # only the real-time call: batch lines are not inference requests


def test_other_endpoints_and_line_errors(sdk: openai.OpenAI) -> None:
    embed = {"custom_id": "e", "method": "POST", "url": "/v1/embeddings",
             "body": {"model": "text-embedding-3-small", "input": ["a", "b"]}}
    bad = {**embed, "custom_id": "bad", "body": {"model": "text-embedding-3-small"}}
    batch = wait_for(sdk, start(sdk, [embed, bad], "/v1/embeddings"), timeout=5.0)
    assert batch.status == "completed" and batch.request_counts is not None
    assert (batch.request_counts.completed, batch.request_counts.failed) == (1, 1)
    assert len(file_lines(sdk, batch.output_file_id)[0]["response"]["body"]["data"]) == 2
    [error] = file_lines(sdk, batch.error_file_id)
    assert error["custom_id"] == "bad" and error["response"]["status_code"] == 400
    assert error["response"]["body"]["error"]["param"] == "input"


def test_partial_failure_puts_500_lines_in_the_error_file(sim: SimulatorServer, sdk: openai.OpenAI) -> None:
    sim.app.apply_config({"error_rate": 0.5, "error_kinds": ["timeout"], "seed": 3})
    batch = wait_for(sdk, start(sdk, [request_line(f"r{i}") for i in range(20)]), timeout=5.0)
    counts = batch.request_counts
    assert batch.status == "completed" and counts is not None and counts.total == 20
    assert 3 <= counts.failed <= 17 and counts.completed + counts.failed == 20
    errors = file_lines(sdk, batch.error_file_id)
    out = file_lines(sdk, batch.output_file_id)
    assert len(errors) == counts.failed and len(out) == counts.completed
    assert {line["custom_id"] for line in errors} | {line["custom_id"] for line in out} == {
        f"r{i}" for i in range(20)}
    assert all(line["response"]["status_code"] == 500 and line["error"] is None for line in errors)
    assert errors[0]["response"]["body"]["error"]["type"] == "server_error"
    assert sim.stats.native_batch_failed_lines == counts.failed and sim.stats.injected_errors == 0


def test_expiry_keeps_finished_lines_and_fails_the_rest(sim: SimulatorServer, sdk: openai.OpenAI) -> None:
    sim.app.apply_config({"batch_turnaround_seconds": 0.4, "batch_expire_after_seconds": 0.15})
    batch = wait_for(sdk, start(sdk, [request_line(f"r{i}") for i in range(8)]), timeout=5.0)
    assert batch.status == "expired" and batch.expired_at is not None and batch.completed_at is None
    counts = batch.request_counts
    assert counts is not None and (counts.total, counts.completed, counts.failed) == (8, 3, 5)
    assert [line["custom_id"] for line in file_lines(sdk, batch.output_file_id)] == ["r0", "r1", "r2"]
    errors = file_lines(sdk, batch.error_file_id)
    assert [line["custom_id"] for line in errors] == [f"r{i}" for i in range(3, 8)]
    assert all(line["response"] is None and line["error"]["code"] == "batch_expired" for line in errors)


def test_invalid_input_fails_the_batch_with_every_bad_line(sdk: openai.OpenAI) -> None:
    lines: list[Any] = [request_line("ok"), "not json", {"method": "POST", "url": CHAT_URL, "body": {}},
                        request_line("ok"), request_line("other", url="/v1/embeddings")]
    raw = jsonl(lines[:1]) + b"{not json\n" + jsonl(lines[2:])
    uploaded = sdk.files.create(file=("input.jsonl", raw), purpose="batch")
    created = sdk.batches.create(input_file_id=uploaded.id, endpoint=CHAT_URL, completion_window="24h")
    batch = sdk.batches.retrieve(created.id)
    assert batch.status == "failed" and batch.failed_at is not None and batch.errors is not None
    assert [(e.line, e.code, e.param) for e in batch.errors.data or []] == [
        (2, "invalid_json_line", None), (3, "missing_required_parameter", "custom_id"),
        (4, "duplicate_custom_id", "custom_id"), (5, "invalid_url", "url")]
    assert batch.output_file_id is None and batch.error_file_id is None


def test_cancel_keeps_finished_lines(sim: SimulatorServer, sdk: openai.OpenAI) -> None:
    sim.config.batch_turnaround_seconds = 30.0
    batch_id = start(sdk, [request_line(f"r{i}") for i in range(3)])
    cancelling = sdk.batches.cancel(batch_id)
    assert cancelling.status == "cancelling" and cancelling.cancelling_at is not None
    batch = sdk.batches.retrieve(batch_id)
    assert batch.status == "cancelled" and batch.cancelled_at is not None and batch.output_file_id is None
    errors = file_lines(sdk, batch.error_file_id)
    assert {line["error"]["code"] for line in errors} == {"batch_cancelled"} and len(errors) == 3
    with pytest.raises(openai.BadRequestError, match="Cannot cancel"):
        sdk.batches.cancel(batch_id)


def test_request_errors_use_the_openai_envelope(sim: SimulatorServer, sdk: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError):
        sdk.batches.retrieve("batch_missing")
    with pytest.raises(openai.NotFoundError):
        sdk.batches.create(input_file_id="file-missing", endpoint=CHAT_URL, completion_window="24h")
    uploaded = sdk.files.create(file=("input.jsonl", jsonl([request_line("a")])), purpose="batch")
    with pytest.raises(openai.BadRequestError, match="completion_window"):
        sdk.batches.create(input_file_id=uploaded.id, endpoint=CHAT_URL, completion_window="1h")  # type: ignore[arg-type]
    with pytest.raises(openai.BadRequestError, match="endpoint"):
        sdk.batches.create(input_file_id=uploaded.id, endpoint="/v1/images", completion_window="24h")  # type: ignore[arg-type]
    with httpx.Client(base_url=sim.base_url) as http:
        assert http.post("/files", files={"file": ("x", b"")}).json()["error"]["param"] == "purpose"
        assert http.post("/files", data={"purpose": "nope"}, files={"file": ("x", b"")}).status_code == 400
        assert http.post("/batches", json={"endpoint": CHAT_URL}).json()["error"]["param"] == "input_file_id"
        assert http.get("/batches", params={"limit": 0}).status_code == 400
    assert sdk.files.retrieve(uploaded.id).filename == "input.jsonl"
    assert uploaded.id in [f.id for f in sdk.files.list(purpose="batch").data]
    assert sdk.files.delete(uploaded.id).deleted
    with pytest.raises(openai.NotFoundError):
        sdk.files.content(uploaded.id)


def test_list_pages_newest_first(sdk: openai.OpenAI) -> None:
    ids = [start(sdk, [request_line("a")]) for _ in range(3)]
    first = sdk.batches.list(limit=2)
    assert [b.id for b in first.data] == ids[:0:-1] and first.has_more
    rest = sdk.batches.list(limit=2, after=first.data[-1].id)
    assert rest.data[0].id == ids[0]


def test_lines_run_on_a_clock_spread_over_the_turnaround() -> None:
    now = [1000.0]
    store = NativeBatchStore(SimulatorStats(), clock=lambda: now[0])
    source = StoredFile("file-1", "in.jsonl", "batch", jsonl([request_line(f"r{i}") for i in range(4)]), 1000)
    batch = store.create_batch(source, CHAT_URL, "24h", None, turnaround=4.0, expire_after=None,
                               settings=RunSettings(0.0, 8, 16), seed=0)
    for at, done in ((1000.5, 0), (1001.0, 1), (1003.9, 3)):
        now[0] = at
        store.advance(batch)
        assert (batch.status, len(batch.runs)) == ("in_progress", done)
    now[0] = 1010.0
    store.advance(batch)
    view = batch.to_dict()
    assert view["status"] == "completed" and view["completed_at"] == 1004
    assert view["request_counts"] == {"total": 4, "completed": 4, "failed": 0}
    assert store.stats.native_batches == 1 and store.stats.native_batch_lines == 4


def test_config_fields_for_the_batch_api() -> None:
    config = SimulatorConfig.from_mapping({"batch_turnaround_seconds": "0.5", "batch_expire_after_seconds": "none",
                                           "batch_discount": "0.4"})
    assert (config.batch_turnaround_seconds, config.batch_expire_after_seconds, config.batch_discount) == (
        0.5, None, 0.4)
    assert SimulatorConfig.from_mapping({"batch_expire_after_seconds": "3"}).batch_expire_after_seconds == 3.0
    for bad in ({"batch_turnaround_seconds": -1}, {"batch_expire_after_seconds": 0}, {"batch_discount": 2}):
        with pytest.raises(ValueError):
            SimulatorConfig.from_mapping(bad)
