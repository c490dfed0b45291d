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
    while (broker.settings.files_dir / expiring.id).exists():
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
