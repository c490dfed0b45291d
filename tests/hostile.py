"""The hostile inputs of issue #11, shared by the SQLite (tests/api) and PostgreSQL (tests/integration) suites.

Each check drives the API over real HTTP and asserts what a client sees: a poison line is a per-line error in
``errors.data`` and the batch ends ``failed`` in seconds; a bad request is a 4xx in OpenAI's error envelope and
the keep-alive connection survives it (uvicorn closes the connection after a 500).
"""

import http.client
import json
import socket
import time
from typing import Any
from urllib.parse import urlsplit

import httpx

from tests.api.helpers import assert_error, create_batch, upload, wait_status
from tests.harness import CHAT_MODEL, chat_line, jsonl

ENDPOINT = "/v1/chat/completions"
DEPTH = 600  #: nesting that broke orjson (later lines) and the token estimate (first line)
FAIL_WITHIN = 15.0  #: seconds a poisoned batch may take to end ``failed``
READ_TIMEOUT = 1.0  #: the API's header and body read timeouts in these tests (settings http_*_timeout)


def _nested(depth: int) -> str:
    return "[" * depth + '"x"' + "]" * depth


def _line(custom_id: str = "ok", **body: Any) -> str:
    return json.dumps({"custom_id": custom_id, "method": "POST", "url": ENDPOINT,
                       "body": {"model": CHAT_MODEL, "messages": [{"role": "user", "content": "hi"}], **body}})


#: name -> (the line as written, the expected (code, param) in errors.data)
POISON: dict[str, tuple[str, tuple[str, str]]] = {
    "nul_custom_id": (_line("a\u0000b"), ("invalid_custom_id", "custom_id")),
    "megabyte_custom_id": (_line("c" * 1_000_000), ("invalid_custom_id", "custom_id")),
    "nested_body": (_line("deep").replace('"body": {', f'"body": {{"extra": {_nested(DEPTH)}, ', 1),
                    ("invalid_body", "body")),
    "nested_messages": (_line("deep-msg").replace('"content": "hi"', f'"content": {_nested(DEPTH)}', 1),
                        ("invalid_body", "body")),
    "model_list": (_line("ml").replace(f'"model": "{CHAT_MODEL}"', '"model": ["a", "b"]', 1),
                   ("invalid_type", "body.model")),
    "model_object": (_line("mo").replace(f'"model": "{CHAT_MODEL}"', '"model": {"a": 1}', 1),
                     ("invalid_type", "body.model")),
}


def check_poison_first_line(http: httpx.Client, name: str) -> None:
    """The poison line alone, first in its file: the batch fails with that line's error, fast."""
    raw, (code, param) = POISON[name]
    file_id = upload(http, (raw + "\n" + _line("after") + "\n").encode()).json()["id"]
    estimate = http.post(f"/files/{file_id}/estimate")
    assert estimate.status_code == 200, estimate.text  # the estimate covers the good lines
    assert estimate.json()["lines"] >= 1
    created = create_batch(http, file_id)
    assert created.status_code == 200, created.text
    batch = wait_status(http, created.json()["id"], ["failed", "in_progress", "completed"], timeout=FAIL_WITHIN)
    assert batch["status"] == "failed", batch
    assert [(e["line"], e["code"], e["param"]) for e in batch["errors"]["data"]] == [(1, code, param)]


def check_poison_later_lines(http: httpx.Client) -> None:
    """Every poison line after a good one, and a good batch created at once: the poisoned batch lists every bad
    line with its number, the good batch completes (one batch's trouble stalls no other)."""
    names = list(POISON)
    poisoned = upload(http, jsonl([chat_line(0), *(POISON[n][0] for n in names)])).json()["id"]
    good = upload(http, jsonl([chat_line(i) for i in range(3)])).json()["id"]
    bad_id = create_batch(http, poisoned).json()["id"]
    good_id = create_batch(http, good).json()["id"]
    batch = wait_status(http, bad_id, ["failed", "in_progress", "completed"], timeout=FAIL_WITHIN)
    assert batch["status"] == "failed", batch
    found = [(e["line"], e["code"], e["param"]) for e in batch["errors"]["data"]]
    assert found == [(i + 2, *POISON[n][1]) for i, n in enumerate(names)]
    assert wait_status(http, good_id, ["completed", "failed"], timeout=60)["status"] == "completed"


def _requests(file_id: str) -> list[tuple[str, str, Any, int, str | None]]:
    """(method, path under /v1, JSON body, expected status, expected param) for every hostile request."""
    batch = {"input_file_id": file_id, "endpoint": ENDPOINT, "completion_window": "24h"}
    sched = {"cron": "0 * * * *", "input_file_id": file_id, "endpoint": ENDPOINT}
    meta_key, meta_value = {"k" * 65: "v"}, {"k": "v" * 513}
    reqs: list[tuple[str, str, Any, int, str | None]] = []
    for path, body in (("/batches", batch), ("/schedules", sched)):
        reqs += [
            ("POST", path, {**body, "priority": 2**31}, 400, "priority"),
            ("POST", path, {**body, "priority": -(2**31) - 1}, 400, "priority"),
            ("POST", path, {**body, "max_cost_usd": -1}, 400, "max_cost_usd"),
            ("POST", path, {**body, "metadata": {f"k{i}": "v" for i in range(17)}}, 400, "metadata"),
            ("POST", path, {**body, "metadata": meta_key}, 400, "metadata"),
            ("POST", path, {**body, "metadata": meta_value}, 400, "metadata"),
            ("POST", path, {**body, "metadata": {"k": "v" * 1_000_000}}, 400, "metadata"),
            ("POST", path, {**body, "input_file_id": "file-\u0000"}, 400, "input_file_id"),
            ("POST", path, {**body, "surprise": 1}, 400, None),
        ]
    reqs += [
        ("POST", "/batches", {**batch, "not_before": 2**31}, 400, "not_before"),
        ("POST", "/schedules", {**sched, "not_before": 2**31}, 400, None),  # schedules have no not_before
        ("POST", "/webhooks", {"url": "https://example.com/\u0000"}, 400, "url"),
    ]
    for path in ("/files/%00", "/files/%00/content", "/batches/%00", "/schedules/%00", "/webhooks/%00",
                 "/webhooks/%00/deliveries", "/models/%00"):
        reqs.append(("GET", path, None, 400, None))
    for path in ("/files/%00/estimate", "/batches/%00/cancel", "/batches/%00/retry", "/schedules/%00",
                 "/webhooks/deliveries/%00/redeliver"):
        reqs.append(("POST", path, {} if path.startswith("/schedules") else None, 400, None))
    for path in ("/files/%00", "/schedules/%00", "/webhooks/%00"):
        reqs.append(("DELETE", path, None, 400, None))
    for path in ("/files", "/batches", "/schedules", "/webhooks", "/webhooks/deliveries"):
        reqs.append(("GET", path + "?after=%00", None, 400, None))
    reqs.append(("GET", "/files?purpose=%00", None, 400, None))
    return reqs


def check_bad_requests(http: httpx.Client) -> int:
    """Every hostile request answers its 4xx in OpenAI's envelope; returns how many were sent."""
    file_id = upload(http, jsonl([chat_line(0)])).json()["id"]
    reqs = _requests(file_id)
    for method, path, body, status, param in reqs:
        resp = http.request(method, path, json=body)
        error = assert_error(resp, status)
        if param is not None:
            assert error["param"] == param, (method, path, error)
        if path.endswith("surprise"):
            assert error["message"] == "Unrecognized request argument supplied: surprise"
    return len(reqs)


def check_keep_alive(base_url: str, key: str) -> None:
    """One connection carries every hostile request and then a good one: the server never closes it."""
    url = urlsplit(base_url)
    conn = http.client.HTTPConnection(url.hostname or "127.0.0.1", url.port, timeout=10)
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    try:
        for method, path, body, _status, _param in _requests("file-missing"):
            conn.request(method, url.path + path, body=None if body is None else json.dumps(body), headers=headers)
            resp = conn.getresponse()
            resp.read()
            assert resp.status < 500 and not resp.will_close, (method, path, resp.status)
        sock = conn.sock
        conn.request("GET", url.path + "/batches", headers=headers)
        resp = conn.getresponse()
        assert resp.status == 200 and json.loads(resp.read())["object"] == "list"
        assert conn.sock is sock  # the same connection served the good request
    finally:
        conn.close()


def check_stalled_request_line(base_url: str) -> None:
    """A client that stops halfway through its request line is disconnected within the header timeout (and a
    generous margin), without an answer."""
    url = urlsplit(base_url)
    with socket.create_connection((url.hostname or "127.0.0.1", url.port or 80), timeout=10 * READ_TIMEOUT) as sock:
        sock.sendall(b"GET /v1/batches HT")
        start = time.monotonic()
        assert sock.recv(1024) == b""  # closed (a socket.timeout here: the server held the connection)
        assert time.monotonic() - start < 10 * READ_TIMEOUT


def check_upstream_garbage(http: httpx.Client, markers: list[str]) -> None:
    """Lines whose upstream answers 200 with garbage (simulator markers) end in the error file as
    ``upstream_invalid_response`` with the answer's first bytes; the good line succeeds."""
    lines = [chat_line(0), *(chat_line(i + 1, f"hi {marker}") for i, marker in enumerate(markers))]
    batch_id = create_batch(http, upload(http, jsonl(lines)).json()["id"]).json()["id"]
    batch = wait_status(http, batch_id, ["completed", "failed"], timeout=60)
    assert batch["status"] == "completed" and batch["request_counts"]["failed"] == len(markers), batch
    errors = [json.loads(line) for line in http.get(f"/files/{batch['error_file_id']}/content").text.splitlines()]
    assert sorted(e["custom_id"] for e in errors) == [f"req-{i + 1}" for i in range(len(markers))]
    for line in errors:
        assert line["response"] is None and line["error"]["code"] == "upstream_invalid_response", line
        assert "it began: '" in line["error"]["message"], line
