"""Input-file validation seen through the API: every bad line is listed with its 1-based line number, code
and param; a file with any bad line fails as a whole and nothing reaches a provider."""

import time
from typing import Any

import httpx
import pytest

from simulator import SimulatorServer
from tests.api.conftest import Tenant
from tests.api.helpers import create_batch, upload, wait_status
from tests.harness import CHAT_MODEL, EMBEDDING_MODEL, chat_line, embedding_line, jsonl

ENDPOINT = "/v1/chat/completions"
MESSAGES = [{"role": "user", "content": "hi"}]


def _req(cid: str, /, **overrides: Any) -> dict[str, Any]:
    """A valid chat request line with some keys replaced, or removed when set to ``_DROP``."""
    line: dict[str, Any] = {"custom_id": cid, "method": "POST", "url": ENDPOINT,
                            "body": {"model": CHAT_MODEL, "messages": MESSAGES}}
    line.update(overrides)
    return {k: v for k, v in line.items() if v is not _DROP}


_DROP = object()
_NO_MODEL = {"messages": MESSAGES}

#: one entry per physical line: (the line as written, its expected (code, param), or None when it is fine)
CASES: list[tuple[Any, tuple[str, str | None] | None]] = [
    (_req("ok-1"), None),                                                                   # 1
    ('{"custom_id": "bad-2", "method": "POST", ', ("invalid_json_line", None)),             # 2
    ("[1, 2, 3]", ("invalid_json_line", None)),                                             # 3
    ('"just a string"', ("invalid_json_line", None)),                                       # 4
    (_req("x", custom_id=_DROP), ("missing_required_parameter", "custom_id")),             # 5
    (_req("ok-1"), ("duplicate_custom_id", "custom_id")),                                   # 6
    (_req("bad-7", method=_DROP), ("missing_required_parameter", "method")),               # 7
    (_req("bad-8", method="GET"), ("invalid_method", "method")),                            # 8
    (_req("ok-9"), None),                                                                   # 9
    ("", None),                                                                             # 10 blank: skipped
    (_req("bad-11", url=_DROP), ("missing_required_parameter", "url")),                    # 11
    (_req("bad-12", url="/v1/embeddings"), ("invalid_url", "url")),                         # 12
    (_req("bad-13", body=_DROP), ("missing_required_parameter", "body")),                  # 13
    (_req("bad-14", body=[1, 2]), ("invalid_body", "body")),                                # 14
    (_req("bad-15", body="model=gpt-4o-mini"), ("invalid_body", "body")),                   # 15
    (_req("bad-16", body=_NO_MODEL), ("missing_required_parameter", "body.model")),        # 16
    (_req("bad-17", body={"model": "gpt-99-imaginary", "messages": MESSAGES}),
     ("model_not_found", "body.model")),                                                    # 17
    (_req("ok-18"), None),                                                                  # 18
    ("null", ("invalid_json_line", None)),                                                  # 19
    ("this is not json", ("invalid_json_line", None)),                                      # 20
    (_req("bad-21", method="DELETE"), ("invalid_method", "method")),                        # 21
    (_req("bad-22", url="/v1/completions"), ("invalid_url", "url")),                        # 22
    (_req("bad-23", body=None), ("missing_required_parameter", "body")),                   # 23
    (_req("bad-24", body={"model": "", "messages": MESSAGES}),
     ("missing_required_parameter", "body.model")),                                         # 24
    (_req("ok-25"), None),                                                                  # 25
]


def _sim_requests(sim: SimulatorServer) -> int:
    return int(httpx.get(f"{sim.url}/_sim/stats").json()["requests"])


def _failed_batch(tenant: Tenant, content: bytes, endpoint: str = ENDPOINT) -> dict[str, Any]:
    file_id = upload(tenant.http, content).json()["id"]
    created = create_batch(tenant.http, file_id, endpoint=endpoint)
    assert created.status_code == 200, created.text
    assert created.json()["status"] == "validating"
    return wait_status(tenant.http, created.json()["id"], ("failed", "in_progress", "completed"))


def test_twenty_bad_lines_are_each_reported_and_nothing_runs(tenant: Tenant, module_sim: SimulatorServer) -> None:
    expected = [(n, *want) for n, (_, want) in enumerate(CASES, start=1) if want is not None]
    assert len(expected) == 20
    calls_before = _sim_requests(module_sim)

    batch = _failed_batch(tenant, jsonl([line for line, _ in CASES]))
    assert batch["status"] == "failed", batch
    assert batch["failed_at"] is not None and batch["in_progress_at"] is None
    assert batch["errors"]["object"] == "list"
    got = [(e["line"], e["code"], e["param"]) for e in batch["errors"]["data"]]
    assert got == expected
    assert all(set(e) == {"code", "line", "message", "param"} and e["message"] for e in batch["errors"]["data"])
    assert batch["request_counts"] == {"total": 0, "completed": 0, "failed": 0}
    assert batch["output_file_id"] is None and batch["error_file_id"] is None

    time.sleep(0.3)  # several planner ticks: had any line been loaded, it would be dispatched by now
    assert tenant.http.get(f"/batches/{batch['id']}").json()["status"] == "failed"
    assert _sim_requests(module_sim) == calls_before


def test_the_same_valid_lines_alone_run(tenant: Tenant, module_sim: SimulatorServer) -> None:
    """Control for the test above: its valid lines are runnable, so its failure came from the bad lines."""
    valid = [line for line, want in CASES if want is None and line != ""]
    calls_before = _sim_requests(module_sim)
    file_id = upload(tenant.http, jsonl(valid)).json()["id"]
    batch = wait_status(tenant.http, create_batch(tenant.http, file_id).json()["id"], ("completed", "failed"))
    assert batch["status"] == "completed" and batch["request_counts"]["total"] == 4
    assert _sim_requests(module_sim) == calls_before + 4


def test_unknown_model_error_names_the_known_models(tenant: Tenant) -> None:
    batch = _failed_batch(tenant, jsonl([chat_line(0, model="no-such-model")]))
    assert batch["status"] == "failed"
    [error] = batch["errors"]["data"]
    assert (error["line"], error["code"], error["param"]) == (1, "model_not_found", "body.model")
    assert "no-such-model" in error["message"]
    for known in (CHAT_MODEL, EMBEDDING_MODEL, "omni-moderation-latest"):
        assert known in error["message"]


@pytest.mark.parametrize("content", [b"", b"\n\n   \n"], ids=["zero-bytes", "blank-lines"])
def test_empty_file_fails_with_empty_file(tenant: Tenant, content: bytes) -> None:
    batch = _failed_batch(tenant, content)
    assert batch["status"] == "failed"
    assert [e["code"] for e in batch["errors"]["data"]] == ["empty_file"]
    assert batch["errors"]["data"][0]["line"] is None
    assert batch["request_counts"]["total"] == 0


def test_lines_must_target_the_batch_endpoint(tenant: Tenant) -> None:
    lines = [embedding_line(0), chat_line(1), embedding_line(2)]
    batch = _failed_batch(tenant, jsonl(lines), endpoint="/v1/embeddings")
    assert [(e["line"], e["code"], e["param"]) for e in batch["errors"]["data"]] == [(2, "invalid_url", "url")]
