"""Two workers storing results at once on PostgreSQL never deadlock (each store locks line rows by id, then batch
rows by id, then usage rows by key).

The interleaving that used to deadlock is forced with a third transaction holding the project's usage row: store 1
(lines of batches A and B of one project) and store 2 (a line of B) both queue behind it, then it lets go. Before the
fix, store 1 held A and U and waited for B while store 2 held B and waited for U: PostgreSQL killed one of them.
"""

import threading
import time
from collections.abc import Iterator

import psycopg
import pytest
from sqlalchemy import Engine
from sqlmodel import Session

from broker.db import make_engine
from broker.migrate import upgrade
from broker.results import Outcome, store_outcomes
from broker.tables import BatchRow, Line, Project

pytestmark = pytest.mark.integration


@pytest.fixture
def engine(pg_url: str) -> Iterator[Engine]:
    engine = make_engine(pg_url)
    upgrade(engine)
    yield engine
    engine.dispose()


def ended(line_id: int, batch_id: str) -> Outcome:
    return Outcome(line_id, batch_id, "succeeded", 200, "{}", input_tokens=3, output_tokens=5, cost_usd=0.001,
                   provider="sim", model="gpt-4o-mini")


def waiting_on_locks(pg_url: str) -> int:
    with psycopg.connect(pg_url) as conn:
        row = conn.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                           "AND wait_event_type = 'Lock'").fetchone()
    return int(row[0]) if row else 0


def test_two_stores_of_one_projects_batches_do_not_deadlock(engine: Engine, pg_url: str) -> None:
    t = int(time.time())
    with Session(engine) as session:
        session.add(Project(id="proj", name="p", created_at=t))
        session.flush()
        for batch_id in ("batch_a", "batch_b"):
            session.add(BatchRow(id=batch_id, project_id="proj", endpoint="/v1/chat/completions", input_file_id="f",
                                 completion_window="24h", status="in_progress", created_at=t, total=2))
        session.flush()
        lines = [Line(batch_id=b, idx=i, custom_id=f"c{i}", body="{}", provider="sim", status="queued", attempts=1)
                 for b in ("batch_a", "batch_b") for i in range(2)]
        session.add_all(lines)
        session.commit()
        a0, a1, b0, b1 = (line.id for line in lines)
    assert a0 is not None and a1 is not None and b0 is not None and b1 is not None
    store_outcomes(engine, [ended(a0, "batch_a")], time.time())  # the project's usage row exists from now on

    errors: list[BaseException] = []

    def store(outcomes: list[Outcome]) -> threading.Thread:
        def run() -> None:
            try:
                store_outcomes(engine, outcomes, time.time())
            except BaseException as exc:
                errors.append(exc)
        thread = threading.Thread(target=run)
        thread.start()
        return thread

    def wait_until_waiting(n: int) -> None:
        deadline = time.monotonic() + 10
        while waiting_on_locks(pg_url) < n:
            assert time.monotonic() < deadline, "a store did not reach its lock wait"
            time.sleep(0.02)

    with psycopg.connect(pg_url) as blocker:
        blocker.execute("SELECT * FROM usage_daily WHERE project_id = 'proj' FOR UPDATE")
        first = store([ended(a1, "batch_a"), ended(b0, "batch_b")])
        wait_until_waiting(1)
        second = store([ended(b1, "batch_b")])
        wait_until_waiting(2)
        blocker.commit()
    first.join(30)
    second.join(30)
    assert not errors, errors
    with psycopg.connect(pg_url) as conn:
        assert conn.execute("SELECT id, completed FROM batch ORDER BY id").fetchall() == [("batch_a", 2),
                                                                                          ("batch_b", 2)]
        assert conn.execute("SELECT sum(requests) FROM usage_daily").fetchone() == (4,)
        seqs = conn.execute("SELECT batch_id, result_seq FROM line ORDER BY batch_id, result_seq").fetchall()
        assert seqs == [("batch_a", 1), ("batch_a", 2), ("batch_b", 1), ("batch_b", 2)]
