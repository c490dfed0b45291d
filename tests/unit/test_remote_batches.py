"""Native batch submissions in SQL: a submission whose worker died is sent again, never lost."""

import time
from pathlib import Path

from sqlalchemy import text

from broker.catalogue import ModelSpec, NativeBatchConfig, ProviderConfig
from broker.db import make_engine
from broker.migrate import upgrade
from broker.remote_batches import (
    SUBMIT_CLAIM_SECONDS,
    claim_submission,
    mark_submitted,
    native_work,
    recover_lost_submissions,
)
from tests.unit.conftest import insert_batch


def test_a_submission_whose_worker_died_is_sent_again(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path}/d.db")
    upgrade(engine)
    provider = ProviderConfig(name="p", base_url="http://127.0.0.1:9/v1", models={"m": ModelSpec()},
                              native_batch=NativeBatchConfig(max_lines=3))
    with engine.begin() as conn:
        insert_batch(conn, "in_progress", total=5, expires_at=time.time() + 86_400)
        for i in range(5):
            conn.execute(text("INSERT INTO line (batch_id, idx, custom_id, body, provider, status, attempts, "
                              "not_before, input_tokens, output_tokens) VALUES ('b', :i, :c, '{}', 'p', 'batched', "
                              "0, 0, 0, 0)"), {"i": i, "c": f"c{i}"})
    now = time.time()
    assert native_work(engine, "p", now)
    first = claim_submission(engine, provider, now)
    second = claim_submission(engine, provider, now)
    assert first is not None and second is not None
    assert [c for _, c, _ in first.lines] == ["c0", "c1", "c2"] and [c for _, c, _ in second.lines] == ["c3", "c4"]
    assert claim_submission(engine, provider, now) is None  # every line is out
    mark_submitted(engine, second.id, "remote-2", poll_seconds=30)

    # the first submission's worker died before recording its remote id: past its claim, its lines go again
    later = now + SUBMIT_CLAIM_SECONDS + 1
    recover_lost_submissions(engine, "p", later)
    again = claim_submission(engine, provider, later)
    assert again is not None and [c for _, c, _ in again.lines] == ["c0", "c1", "c2"] and again.id != first.id
    with engine.connect() as conn:
        states = dict(conn.execute(text("SELECT id, status FROM remote_batch")).all())
    assert states == {first.id: "ended", second.id: "running", again.id: "submitting"}
    engine.dispose()
