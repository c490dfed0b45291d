"""Interactive admission on SQL: slots go by rank (priority, then flex behind every interactive call), and batch
release leases no line into a slot an interactive call holds or waits for."""

import time
from pathlib import Path

from sqlalchemy import Engine, text

from broker.capacity import FLEX_RANK_OFFSET, try_admit
from broker.catalogue import ProviderConfig
from broker.db import make_engine
from broker.dispatch import release
from broker.interactive import end, held
from broker.migrate import upgrade
from tests.unit.conftest import insert_batch

PROVIDER = ProviderConfig(name="p", base_url="http://127.0.0.1:9/v1", max_concurrency=2)


def _engine(tmp_path: Path) -> Engine:
    engine = make_engine(f"sqlite:///{tmp_path}/capacity.db")
    upgrade(engine)
    return engine


def _admit(engine: Engine, call_id: str, rank: int, at: float, new: bool = True) -> bool:
    return bool(try_admit(engine, PROVIDER, call_id, project_id="proj", rank=rank, created_at=at,
                          lease_until=at + 60, at=at, new=new))


def test_freed_slots_go_by_rank_then_arrival(tmp_path: Path) -> None:
    engine, t = _engine(tmp_path), 1000.0
    assert _admit(engine, "a", 20, t) and _admit(engine, "b", 20, t + 1)
    assert not _admit(engine, "flex", 20 + FLEX_RANK_OFFSET, t + 2)
    assert not _admit(engine, "normal", 20, t + 3)
    assert not _admit(engine, "urgent", 0, t + 4)
    end(engine, ["a"], [], t + 5)
    assert not _admit(engine, "flex", 20 + FLEX_RANK_OFFSET, t + 2, new=False)
    assert not _admit(engine, "normal", 20, t + 3, new=False)
    assert _admit(engine, "urgent", 0, t + 4, new=False)
    end(engine, ["b"], [], t + 6)
    assert not _admit(engine, "flex", 20 + FLEX_RANK_OFFSET, t + 2, new=False)
    assert _admit(engine, "normal", 20, t + 3, new=False)
    with engine.connect() as conn:
        assert held(conn, "p", t + 7) == 3


def test_batch_release_leaves_interactive_slots_alone(tmp_path: Path) -> None:
    engine = _engine(tmp_path)
    with engine.begin() as conn:
        insert_batch(conn, "in_progress", 5)
        conn.execute(text("INSERT INTO line (batch_id, idx, custom_id, body, provider, status, attempts, not_before, "
                          "input_tokens, output_tokens) VALUES ('b', :i, :c, '{}', 'p', 'pending', 0, 0, 0, 0)"),
                     [{"i": i, "c": f"c{i}"} for i in range(5)])
    now = time.time()
    assert _admit(engine, "i1", 20, now)
    with engine.connect() as conn:
        chunks = release(conn, PROVIDER, 60)
        conn.commit()
    assert sum(len(c.lines) for c in chunks) == 1, "one slot of two is the interactive call's"
    assert not _admit(engine, "i2", 20, now + 0.001), "the provider is full: the second call waits"
    with engine.connect() as conn:
        assert release(conn, PROVIDER, 60) == [], "and the batch does not take the slot it waits for"


def test_an_admission_takes_spare_slots_only_from_plenty_and_when_no_call_waits(tmp_path: Path) -> None:
    engine, t = _engine(tmp_path), 1000.0
    roomy = PROVIDER.model_copy(update={"max_concurrency": 8})

    def admit(call_id: str, at: float, spares: int) -> list[str]:
        return try_admit(engine, roomy, call_id, project_id="proj", rank=20, created_at=at, lease_until=at + 60,
                         at=at, new=True, spares=[f"{call_id}-spare{i}" for i in range(spares)])

    assert admit("a", t, 4) == ["a", "a-spare0", "a-spare1", "a-spare2"]  # 7 left: at most half of them
    assert admit("b", t + 1, 4) == ["b", "b-spare0"]  # 4 left after a's: b takes one, and one of the other 3
    assert admit("c", t + 2, 4) == ["c"]  # 2 left: nothing spare
    assert admit("d", t + 3, 4) == ["d"] and admit("w", t + 3.5, 4) == []  # the last slot; then a call waits
    end(engine, ["a", "a-spare0", "a-spare1"], [], t + 4)
    assert admit("e", t + 5, 4) == ["e"], "a call waits: no spares taken ahead of it"
