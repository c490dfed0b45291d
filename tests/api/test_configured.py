"""Behaviour that depends on settings: the upload size cap, the per-batch line cap, and auth switched off.

Each test starts its own broker with ``make_broker``; this module must not use ``shared_broker``.
"""


import httpx
import openai
import pytest

from tests.api.helpers import assert_error, create_batch, upload, wait_status
from tests.harness import MakeBroker, chat_line, jsonl


def test_upload_over_the_size_cap_is_413_and_leaves_nothing(make_broker: MakeBroker) -> None:
    broker = make_broker(max_upload_bytes=1000, workers=False, planner=False)
    files_dir = broker.settings.files_dir
    with broker.http() as http:
        for size in (1001, 256 * 1024):
            error = assert_error(upload(http, b"x" * size), 413, param="file")
            assert "1000" in error["message"]
        with pytest.raises(openai.APIStatusError) as info:
            broker.client().files.create(file=("big.jsonl", b"y" * 5000), purpose="batch")
        assert info.value.status_code == 413
        assert http.get("/files").json()["data"] == []
        assert list(files_dir.iterdir()) == []  # no stored bytes and no upload temp files

        at_cap = upload(http, b"z" * 1000)  # exactly the cap is allowed
        assert at_cap.status_code == 200, at_cap.text
        assert at_cap.json()["bytes"] == 1000
        assert [f["id"] for f in http.get("/files").json()["data"]] == [at_cap.json()["id"]]
        assert [p.name for p in files_dir.iterdir()] == [at_cap.json()["id"]]


def test_file_over_the_line_cap_fails_with_too_many_tasks(make_broker: MakeBroker) -> None:
    broker = make_broker(max_batch_lines=3)
    with broker.http() as http:
        over = upload(http, jsonl([chat_line(i) for i in range(4)])).json()["id"]
        failed = wait_status(http, create_batch(http, over).json()["id"], ("failed", "completed"))
        assert failed["status"] == "failed"
        assert [(e["code"], e["param"], e["line"]) for e in failed["errors"]["data"]] == [
            ("too_many_tasks", "input_file_id", None)]
        assert failed["request_counts"]["total"] == 0

        at_cap = upload(http, jsonl([chat_line(i) for i in range(3)])).json()["id"]
        done = wait_status(http, create_batch(http, at_cap).json()["id"], ("failed", "completed"))
        assert done["status"] == "completed" and done["request_counts"]["completed"] == 3


def test_auth_disabled_accepts_any_key_or_none(make_broker: MakeBroker) -> None:
    broker = make_broker(auth_disabled=True, workers=False, planner=False)
    client = broker.client("sk-anything-at-all")
    f = client.files.create(file=("in.jsonl", jsonl([chat_line(0)])), purpose="batch")
    assert broker.client("another-made-up-key").files.retrieve(f.id).id == f.id
    resp = httpx.get(broker.base_url + "/files")  # no Authorization header at all
    assert resp.status_code == 200, resp.text
    assert [x["id"] for x in resp.json()["data"]] == [f.id]
    assert [m.id for m in client.models.list()] == broker.catalogue.model_names()
    assert httpx.get(broker.base_url + "/organization/projects").status_code == 200  # the admin API is open too
