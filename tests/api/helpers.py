"""Assertions on OpenAI's wire shapes, shared by the API tests."""

import time
from collections.abc import Sequence
from typing import Any

import httpx

ERROR_KEYS = {"message", "type", "param", "code"}
FILE_KEYS = {"id", "object", "bytes", "created_at", "filename", "purpose", "status", "expires_at", "status_details"}
LIST_KEYS = {"object", "data", "first_id", "last_id", "has_more"}
BATCH_KEYS = {
    "id", "object", "endpoint", "model", "errors", "input_file_id", "completion_window", "status",
    "output_file_id", "error_file_id", "created_at", "in_progress_at", "expires_at", "finalizing_at",
    "completed_at", "failed_at", "expired_at", "cancelling_at", "cancelled_at", "request_counts", "usage",
    "metadata",
}
_ANY = object()


def assert_error(resp: httpx.Response, status: int, *, param: Any = _ANY, code: Any = _ANY,
                 type_: str = "invalid_request_error") -> dict[str, Any]:
    """``resp`` is OpenAI's error envelope, exactly ``{"error": {message, type, param, code}}``."""
    assert resp.status_code == status, resp.text
    body = resp.json()
    assert set(body) == {"error"}, body
    error: dict[str, Any] = body["error"]
    assert set(error) == ERROR_KEYS, error
    assert isinstance(error["message"], str) and error["message"], error
    assert error["type"] == type_, error
    if param is not _ANY:
        assert error["param"] == param, error
    if code is not _ANY:
        assert error["code"] == code, error
    return error


def upload(http: httpx.Client, content: bytes, purpose: str | None = "batch", filename: str = "input.jsonl",
           **fields: str) -> httpx.Response:
    """A raw multipart upload; ``fields`` are extra form fields (e.g. ``{"expires_after[seconds]": "3600"}``)."""
    data = {**({"purpose": purpose} if purpose is not None else {}), **fields}
    return http.post("/files", files={"file": (filename, content, "application/jsonl")}, data=data)


def create_batch(http: httpx.Client, file_id: str, endpoint: str = "/v1/chat/completions",
                 **body: Any) -> httpx.Response:
    return http.post("/batches", json={"input_file_id": file_id, "endpoint": endpoint,
                                       "completion_window": "24h", **body})


def wait_status(http: httpx.Client, batch_id: str, statuses: Sequence[str], timeout: float = 20.0) -> dict[str, Any]:
    """Poll a batch over raw HTTP until its status is one of ``statuses``."""
    deadline = time.monotonic() + timeout
    while True:
        batch: dict[str, Any] = http.get(f"/batches/{batch_id}").json()
        if batch["status"] in statuses:
            return batch
        assert time.monotonic() < deadline, f"batch still {batch['status']} after {timeout}s: {batch}"
        time.sleep(0.05)
