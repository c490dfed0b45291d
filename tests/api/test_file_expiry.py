"""Files uploaded with ``expires_after`` disappear (row and bytes) once they expire; orphaned temporary files
are swept."""

import os
import time

import httpx
from sqlalchemy import text

from tests.harness import EmbeddedBroker, MakeBroker


def test_expired_files_are_deleted_by_the_planner(broker: EmbeddedBroker) -> None:
    client = broker.client()
    kept = client.files.create(file=("a.jsonl", b"{}\n"), purpose="batch")
    expiring = client.files.create(file=("b.jsonl", b"{}\n"), purpose="batch",
                                   expires_after={"anchor": "created_at", "seconds": 3600})
    assert expiring.expires_at == expiring.created_at + 3600
    with broker.core.engine.begin() as conn:  # an hour is long for a test: age the file by hand
        conn.execute(text("UPDATE file SET expires_at = :t WHERE id = :id"), {"t": int(time.time()) - 1,
                                                                             "id": expiring.id})
    deadline = time.monotonic() + 10
    while broker.core.store.path_for(expiring.id).exists():
        assert time.monotonic() < deadline, "expired file was not purged"
        time.sleep(0.05)
    resp = httpx.get(f"{broker.base_url}/files/{expiring.id}", headers={"Authorization": f"Bearer {broker.key}"})
    assert resp.status_code == 404 and resp.json()["error"]["type"] == "invalid_request_error"
    assert client.files.retrieve(kept.id).id == kept.id


def test_a_planner_starting_deletes_temporary_files_whose_writer_died(make_broker: MakeBroker) -> None:
    idle = make_broker(workers=False, planner=False)  # as a process that crashed mid-upload left it
    store = idle.core.store
    orphan, live = store.temp_path(), store.temp_path()
    orphan.write_bytes(b"x" * 1000)
    live.write_bytes(b"y" * 1000)
    two_hours_ago = time.time() - 2 * 3600
    os.utime(orphan, (two_hours_ago, two_hours_ago))
    idle.stop()

    restarted = make_broker()
    deadline = time.monotonic() + 10
    while orphan.exists():
        assert time.monotonic() < deadline, "the orphaned temporary file was not swept"
        time.sleep(0.05)
    assert live.exists(), "a file still being written (recently touched) is left alone"
    assert restarted.client().files.list().data == []


def test_batch_files_expire_after_30_days_by_default_and_are_then_deleted_unless_a_schedule_uses_them(
        broker: EmbeddedBroker) -> None:
    client = broker.client()
    lines = b'{"custom_id": "a", "method": "POST", "url": "/v1/chat/completions", "body": {"model": "gpt-4o-mini"}}\n'
    plain = client.files.create(file=("a.jsonl", lines), purpose="batch")
    scheduled = client.files.create(file=("s.jsonl", lines), purpose="batch")
    other = client.files.create(file=("u.jsonl", b"{}\n"), purpose="user_data")
    assert plain.expires_at == plain.created_at + 30 * 86_400  # as OpenAI, without expires_after
    assert other.expires_at is None  # the default is for batch input files only
    client.post("/schedules", cast_to=object, body={"cron": "0 2 * * *", "input_file_id": scheduled.id,
                                                    "endpoint": "/v1/chat/completions", "completion_window": "24h"})
    with broker.core.engine.begin() as conn:  # thirty days on
        conn.execute(text("UPDATE file SET expires_at = :t WHERE id IN (:a, :b)"),
                     {"t": int(time.time()) - 1, "a": plain.id, "b": scheduled.id})
    deadline = time.monotonic() + 10
    while broker.core.store.path_for(plain.id).exists():
        assert time.monotonic() < deadline, "the expired batch file was not purged"
        time.sleep(0.05)
    ids = {f.id for f in client.files.list().data}
    assert plain.id not in ids and {scheduled.id, other.id} <= ids  # a schedule's input outlives its expiry
