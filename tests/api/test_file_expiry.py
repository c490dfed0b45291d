"""Files uploaded with ``expires_after`` disappear (row and bytes) once they expire."""

import time

import httpx
from sqlalchemy import text

from tests.harness import EmbeddedBroker


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
