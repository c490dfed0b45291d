"""Batches API over real HTTP: create (and its refusals), our extension fields, list pagination, retrieve,
cancel, exactly as OpenAI's Batch API shapes them."""

import time
from typing import Any

import openai
import pytest

from tests.api.conftest import Tenant
from tests.api.helpers import BATCH_KEYS, LIST_KEYS, assert_error, create_batch, upload, wait_status
from tests.harness import CHAT_MODEL, chat_line, jsonl, read_jsonl, submit, wait_for

FAR_FUTURE = 3600  #: seconds ahead for a not_before that keeps a batch from being dispatched during a test


def _batch_file(tenant: Tenant, n: int = 1) -> str:
    return str(upload(tenant.http, jsonl([chat_line(i) for i in range(n)])).json()["id"])


def test_create_returns_openai_batch_then_completes(tenant: Tenant) -> None:
    file_id = _batch_file(tenant, 3)
    before = int(time.time())
    resp = create_batch(tenant.http, file_id, metadata={"job": "nightly"})
    assert resp.status_code == 200, resp.text
    batch = resp.json()
    assert BATCH_KEYS <= set(batch)
    assert batch["id"].startswith("batch")
    assert (batch["object"], batch["status"], batch["endpoint"]) == ("batch", "validating", "/v1/chat/completions")
    assert (batch["input_file_id"], batch["completion_window"]) == (file_id, "24h")
    assert batch["created_at"] >= before
    assert batch["expires_at"] == batch["created_at"] + 86400
    assert batch["request_counts"] == {"total": 0, "completed": 0, "failed": 0}
    assert batch["metadata"] == {"job": "nightly"}
    assert batch["errors"] is None and batch["output_file_id"] is None and batch["error_file_id"] is None

    done = wait_status(tenant.http, batch["id"], ("completed", "failed"))
    assert done["status"] == "completed"
    assert done["model"] == CHAT_MODEL
    assert done["request_counts"] == {"total": 3, "completed": 3, "failed": 0}
    assert done["in_progress_at"] and done["finalizing_at"] and done["completed_at"]
    assert done["metadata"] == {"job": "nightly"}
    out = read_jsonl(tenant.client, done["output_file_id"])
    assert sorted(line["custom_id"] for line in out) == ["req-0", "req-1", "req-2"]
    assert tenant.client.files.retrieve(done["output_file_id"]).purpose == "batch_output"


def _refusals(tenant: Tenant) -> list[tuple[dict[str, Any], str]]:
    good = _batch_file(tenant)
    other_purpose = upload(tenant.http, jsonl([chat_line(0)]), purpose="user_data").json()["id"]
    base = {"input_file_id": good, "endpoint": "/v1/chat/completions", "completion_window": "24h"}
    return [
        ({**base, "endpoint": "/v1/images/generations"}, "endpoint"),
        ({**base, "endpoint": "v1/chat/completions"}, "endpoint"),
        ({k: v for k, v in base.items() if k != "endpoint"}, "endpoint"),
        ({k: v for k, v in base.items() if k != "input_file_id"}, "input_file_id"),
        ({**base, "input_file_id": other_purpose}, "input_file_id"),
        ({**base, "completion_window": "tomorrow"}, "completion_window"),
        ({**base, "completion_window": "24"}, "completion_window"),
        ({**base, "completion_window": "30s"}, "completion_window"),  # shorter than the 60 s minimum
        ({**base, "completion_window": "31d"}, "completion_window"),
        ({**base, "priority": "asap"}, "priority"),
        ({**base, "priority": "5"}, "priority"),
        ({**base, "metadata": {f"k{i}": "v" for i in range(17)}}, "metadata"),
        ({**base, "output_expires_after": {"anchor": "created_at", "seconds": 60}}, "output_expires_after.seconds"),
    ]


def test_invalid_create_requests_are_400_with_param(tenant: Tenant) -> None:
    for body, param in _refusals(tenant):
        assert_error(tenant.http.post("/batches", json=body), 400, param=param)
    assert tenant.http.get("/batches").json()["data"] == []  # nothing was created


def test_unknown_input_file_is_404_and_bad_json_is_400(tenant: Tenant) -> None:
    error = assert_error(create_batch(tenant.http, "file_doesnotexist"), 404)
    assert "file_doesnotexist" in error["message"]
    resp = tenant.http.post("/batches", content=b'{"input_file_id": ', headers={"content-type": "application/json"})
    assert_error(resp, 400, param=None)
    assert tenant.http.get("/batches").json()["data"] == []


def test_sdk_raises_bad_request_with_param(tenant: Tenant) -> None:
    file_id = _batch_file(tenant)
    with pytest.raises(openai.BadRequestError) as info:
        tenant.client.batches.create(input_file_id=file_id, endpoint="/v1/nope",  # type: ignore[arg-type]
                                     completion_window="24h")
    assert isinstance(info.value.body, dict) and info.value.body["param"] == "endpoint"
    with pytest.raises(openai.NotFoundError):
        tenant.client.batches.create(input_file_id="file_missing", endpoint="/v1/chat/completions",
                                     completion_window="24h")


def test_extension_fields_are_shown_on_the_batch(tenant: Tenant) -> None:
    not_before = int(time.time()) + FAR_FUTURE
    batch = submit(tenant.client, [chat_line(0), chat_line(1)], priority="high", completion_window="10m",
                   not_before=not_before, metadata={"team": "search", "run": "7"})
    for shown in (batch, tenant.client.batches.retrieve(batch.id)):
        extra = shown.model_dump()
        assert extra["priority"] == "high"
        assert extra["not_before"] == not_before
        assert shown.completion_window == "10m"
        assert shown.metadata == {"team": "search", "run": "7"}
        assert shown.expires_at == not_before + 600  # the window starts at not_before
    listed = tenant.http.get("/batches").json()["data"]
    assert [(b["id"], b["priority"], b["not_before"], b["completion_window"]) for b in listed] == [
        (batch.id, "high", not_before, "10m")]

    # not_before holds it back: loaded, but nothing runs
    running = wait_for(tenant.client, batch.id, statuses=("in_progress", "failed", "completed"))
    assert running.status == "in_progress"
    time.sleep(0.4)  # several planner ticks
    held = tenant.client.batches.retrieve(batch.id)
    assert held.request_counts is not None
    assert (held.request_counts.total, held.request_counts.completed, held.request_counts.failed) == (2, 0, 0)

    numeric = submit(tenant.client, [chat_line(0)], priority=7, not_before=not_before)
    assert numeric.model_dump()["priority"] == 7
    assert tenant.http.get(f"/batches/{numeric.id}").json()["priority"] == 7


def test_cancel_before_dispatch_ends_cancelled_with_every_line_in_the_error_file(tenant: Tenant) -> None:
    batch = submit(tenant.client, [chat_line(i) for i in range(3)], not_before=int(time.time()) + FAR_FUTURE)
    wait_for(tenant.client, batch.id, statuses=("in_progress",))
    resp = tenant.http.post(f"/batches/{batch.id}/cancel")
    assert resp.status_code == 200, resp.text
    assert resp.json()["status"] in ("cancelling", "cancelled")
    assert resp.json()["cancelling_at"] is not None
    done = wait_for(tenant.client, batch.id)
    assert done.status == "cancelled" and done.cancelled_at is not None
    assert done.request_counts is not None
    assert (done.request_counts.total, done.request_counts.completed, done.request_counts.failed) == (3, 0, 3)
    assert read_jsonl(tenant.client, done.output_file_id) == []  # nothing succeeded (the file may exist, empty)
    errors = read_jsonl(tenant.client, done.error_file_id)
    assert sorted(e["custom_id"] for e in errors) == ["req-0", "req-1", "req-2"]
    assert {e["error"]["code"] for e in errors} == {"batch_cancelled"} and all(e["response"] is None for e in errors)
    assert_error(tenant.http.post(f"/batches/{batch.id}/cancel"), 400)  # cancelled is final


def test_cancel_of_completed_batch_is_400_and_changes_nothing(tenant: Tenant) -> None:
    batch = wait_for(tenant.client, submit(tenant.client, [chat_line(0)]).id)
    assert batch.status == "completed"
    error = assert_error(tenant.http.post(f"/batches/{batch.id}/cancel"), 400)
    assert "completed" in error["message"]
    with pytest.raises(openai.BadRequestError):
        tenant.client.batches.cancel(batch.id)
    after = tenant.client.batches.retrieve(batch.id)
    assert after.status == "completed" and after.cancelling_at is None and after.cancelled_at is None


def test_retrieve_and_cancel_unknown_batch_are_404(tenant: Tenant) -> None:
    error = assert_error(tenant.http.get("/batches/batch_doesnotexist"), 404)
    assert "batch_doesnotexist" in error["message"]
    assert_error(tenant.http.post("/batches/batch_doesnotexist/cancel"), 404)
    with pytest.raises(openai.NotFoundError):
        tenant.client.batches.retrieve("batch_doesnotexist")


def test_list_paginates_like_openai(tenant: Tenant) -> None:
    file_id = _batch_file(tenant)
    not_before = int(time.time()) + FAR_FUTURE  # keep the 23 batches idle
    created = [create_batch(tenant.http, file_id, not_before=not_before).json()["id"] for _ in range(23)]
    newest_first = created[::-1]

    default = tenant.http.get("/batches").json()
    assert set(default) == LIST_KEYS and default["object"] == "list"
    assert [b["id"] for b in default["data"]] == newest_first[:20]  # default limit 20, newest first
    assert (default["first_id"], default["last_id"], default["has_more"]) == (newest_first[0], newest_first[19], True)
    assert all(BATCH_KEYS <= set(b) for b in default["data"])

    rest = tenant.http.get("/batches", params={"after": default["last_id"]}).json()
    assert [b["id"] for b in rest["data"]] == newest_first[20:]
    assert (rest["first_id"], rest["last_id"], rest["has_more"]) == (newest_first[20], newest_first[22], False)

    one = tenant.http.get("/batches", params={"limit": 1}).json()
    assert [b["id"] for b in one["data"]] == [newest_first[0]] and one["has_more"] is True
    everything = tenant.http.get("/batches", params={"limit": 100}).json()
    assert [b["id"] for b in everything["data"]] == newest_first and everything["has_more"] is False
    exact = tenant.http.get("/batches", params={"limit": 23}).json()
    assert len(exact["data"]) == 23 and exact["has_more"] is False

    for bad in (0, 101, -1, "many"):
        assert_error(tenant.http.get("/batches", params={"limit": bad}), 400, param="limit")

    assert [b.id for b in tenant.client.batches.list(limit=5)] == newest_first  # the SDK follows the cursor
    assert tenant.client.batches.list().has_more is True


def test_output_expires_after_applies_to_result_files(tenant: Tenant) -> None:
    file_id = _batch_file(tenant, 2)
    batch = tenant.client.batches.create(input_file_id=file_id, endpoint="/v1/chat/completions",
                                         completion_window="24h",
                                         output_expires_after={"anchor": "created_at", "seconds": 3600})
    done = wait_for(tenant.client, batch.id)
    assert done.status == "completed" and done.output_file_id is not None
    out = tenant.client.files.retrieve(done.output_file_id)
    assert out.expires_at == out.created_at + 3600
