"""Schedules below the API: next run times on the zone's clock, and firing in SQL (once per due time)."""

import threading
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import orjson
import pytest
from sqlalchemy import Engine, text
from sqlmodel import Session, col, select

from broker.auth import get_or_create_project
from broker.catalogue import Catalogue, ModelSpec, ProviderConfig
from broker.core import Core
from broker.db import make_engine, session_scope
from broker.errors import InvalidRequest
from broker.files import register_file
from broker.migrate import upgrade
from broker.schedules.cron import check_cron, check_timezone, next_run
from broker.schedules.manage import create_schedule, update_schedule
from broker.schedules.runner import fire_due, fire_one
from broker.settings import Settings
from broker.storage import FileStore
from broker.tables import BatchRow, ScheduleRow
from schemas.schedules import ScheduleCreate, ScheduleUpdate
from tests import harness
from tests.harness import CHAT_MODEL, chat_line

PARIS = ZoneInfo("Europe/Paris")
UTC = ZoneInfo("UTC")


def utc(*parts: int) -> int:
    return int(datetime(*parts, tzinfo=UTC).timestamp())  # type: ignore[misc]


def paris(*parts: int) -> float:
    return datetime(*parts, tzinfo=PARIS).timestamp()  # type: ignore[misc]


def runs(cron: str, zone: str, after: float, n: int) -> list[int]:
    out: list[int] = []
    for _ in range(n):
        after = next_run(cron, zone, after)
        out.append(int(after))
    return out


def test_daily_run_is_at_two_on_the_paris_clock_through_both_dst_changes() -> None:
    # spring forward (2025-03-30): 02:00 does not exist, the run happens as the clock jumps to 03:00 CEST
    assert runs("0 2 * * *", "Europe/Paris", paris(2025, 3, 29, 12), 3) == [
        utc(2025, 3, 30, 1), utc(2025, 3, 31, 0), utc(2025, 4, 1, 0)]
    # fall back (2025-10-26): 02:00 comes twice; the run happens once, the first time, then at 02:00 CET
    assert runs("0 2 * * *", "Europe/Paris", paris(2025, 10, 25, 12), 3) == [
        utc(2025, 10, 26, 0), utc(2025, 10, 27, 1), utc(2025, 10, 28, 1)]
    # the same expression in UTC ignores Paris's clock
    assert runs("0 2 * * *", "UTC", paris(2025, 10, 25, 12), 2) == [utc(2025, 10, 26, 2), utc(2025, 10, 27, 2)]


def test_hourly_runs_follow_real_time_through_the_repeated_hour() -> None:
    assert runs("0 * * * *", "Europe/Paris", paris(2025, 10, 26, 0, 30), 4) == [
        utc(2025, 10, 25, 23), utc(2025, 10, 26, 0), utc(2025, 10, 26, 1), utc(2025, 10, 26, 2)]


def test_seconds_field_names_and_strictly_after() -> None:
    base = utc(2025, 1, 1, 12, 0, 1)
    assert runs("* * * * * */2", "UTC", base, 3) == [base + 1, base + 3, base + 5]
    assert next_run("* * * * * */2", "UTC", base + 1) == base + 3, "a run exactly at `after` is not next"
    assert next_run("* * * * * */2", "UTC", base + 0.5) == base + 1
    assert next_run("@daily", "UTC", base) == utc(2025, 1, 2)
    assert check_cron("  0   2 * * * ") == "0 2 * * *"


@pytest.mark.parametrize("cron", ["bad", "61 * * * *", "* * * *", "0 0 * * * 0 2025", "@reboot", ""])
def test_bad_cron_is_a_400_on_param_cron(cron: str) -> None:
    with pytest.raises(InvalidRequest) as info:
        check_cron(cron)
    assert info.value.param == "cron"


def test_cron_that_never_matches_and_unknown_zones_are_400s() -> None:
    with pytest.raises(InvalidRequest) as info:
        next_run("0 0 31 2 *", "UTC", time.time())
    assert info.value.param == "cron"
    for zone in ("Mars/Olympus", "utc", "", "../../etc/passwd"):
        with pytest.raises(InvalidRequest) as info:
            check_timezone(zone)
        assert info.value.param == "timezone", zone
    assert check_timezone("America/New_York") == "America/New_York"


@pytest.fixture
def db(tmp_path: Path) -> Iterator[tuple[Engine, Settings, FileStore]]:
    settings = harness.test_settings(tmp_path)
    engine = make_engine(settings.database_url)
    upgrade(engine)
    yield engine, settings, FileStore(settings.files_dir)
    engine.dispose()


CATALOGUE = Catalogue(providers={"up": ProviderConfig(base_url="http://127.0.0.1:9/v1",
                                                      models={CHAT_MODEL: ModelSpec(input=0.15, output=0.6)})})


def add_schedules(engine: Engine, store: FileStore, n: int, cron: str = "0 2 * * *",
                  timezone: str = "Europe/Paris") -> list[str]:
    """``n`` schedules of project ``p`` on one uploaded two-line file."""
    source = store.root / "upload.tmp"
    source.write_bytes(b"".join(orjson.dumps(chat_line(i)) + b"\n" for i in range(2)))
    with session_scope(engine) as session:
        project = get_or_create_project(session, "p").id
        upload = register_file(session, store, project_id=project, source=source, filename="in.jsonl",
                               purpose="batch")
        rows = [create_schedule(session, project, ScheduleCreate(
            cron=cron, timezone=timezone, input_file_id=upload.id, endpoint="/v1/chat/completions",
            metadata={"job": f"nightly-{i}"}, route="realtime", completion_window="7d"), 60) for i in range(n)]
        return [r.id for r in rows]


def make_due(engine: Engine, at: int) -> None:
    with engine.begin() as conn:
        conn.execute(text("UPDATE schedule SET next_run_at = :t"), {"t": at})


def batches_by_schedule(engine: Engine) -> dict[str, list[BatchRow]]:
    with Session(engine) as session:
        out: dict[str, list[BatchRow]] = {}
        for b in session.exec(select(BatchRow).order_by(col(BatchRow.id))):
            out.setdefault(orjson.loads(b.metadata_json or "{}")["schedule_id"], []).append(b)
        return out


def schedule(engine: Engine, schedule_id: str) -> ScheduleRow:
    with Session(engine) as session:
        row = session.get(ScheduleRow, schedule_id)
        assert row is not None
        return row


def test_missed_runs_make_one_batch_and_the_next_run_is_after_now(db: tuple[Engine, Settings, FileStore]) -> None:
    engine, settings, store = db
    [sid] = add_schedules(engine, store, 1)
    t = time.time()
    assert fire_due(Core(settings, engine, CATALOGUE, store), at=t) == [], "not due yet"
    make_due(engine, int(t) - 3 * 86_400)  # down for three nights

    [batch_id] = fire_due(Core(settings, engine, CATALOGUE, store), at=t)
    assert fire_due(Core(settings, engine, CATALOGUE, store), at=t + 1) == []
    row = schedule(engine, sid)
    assert row.next_run_at == next_run("0 2 * * *", "Europe/Paris", t) > t, "after now, not after the missed run"
    assert (row.last_run_at, row.last_batch_id, row.last_error) == (int(t), batch_id, None)
    [batch] = batches_by_schedule(engine)[sid]
    assert batch.id == batch_id and batch.status == "in_progress" and batch.total == 2, "validated at once"
    assert orjson.loads(batch.metadata_json or "") == {"job": "nightly-0", "schedule_id": sid}
    assert (batch.route, batch.completion_window, batch.endpoint) == ("realtime", "7d", "/v1/chat/completions")


def fire_from_threads(engine: Engine, settings: Settings, store: FileStore, threads: int) -> list[str]:
    start, created, lock = threading.Barrier(threads), [], threading.Lock()

    def planner() -> None:
        start.wait()
        for _ in range(3):
            got = fire_due(Core(settings, engine, CATALOGUE, store))
            with lock:
                created.extend(got)

    workers = [threading.Thread(target=planner) for _ in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(30)
    return created


def test_planners_ticking_at_once_create_one_batch_per_schedule_and_due_time(
        db: tuple[Engine, Settings, FileStore]) -> None:
    engine, settings, store = db
    ids = add_schedules(engine, store, 6)
    for round_ in (1, 2):
        make_due(engine, int(time.time()) - round_)
        created = fire_from_threads(engine, settings, store, threads=4)
        assert len(created) == len(set(created)) == 6, created
        per_schedule = batches_by_schedule(engine)
        assert {sid: len(per_schedule[sid]) for sid in ids} == {sid: round_ for sid in ids}
        assert all(schedule(engine, sid).next_run_at > time.time() for sid in ids)


def test_a_planner_acting_on_a_due_time_another_has_taken_creates_nothing(
        db: tuple[Engine, Settings, FileStore]) -> None:
    engine, settings, store = db
    [sid] = add_schedules(engine, store, 1)
    due = int(time.time()) - 60
    make_due(engine, due)
    t = time.time()
    # both planners read the schedule as due at `due`; the first to claim it wins
    first = fire_one(Core(settings, engine, CATALOGUE, store), sid, due, t)
    second = fire_one(Core(settings, engine, CATALOGUE, store), sid, due, t)
    assert first is not None and second is None
    assert [b.id for b in batches_by_schedule(engine)[sid]] == [first]


def test_a_run_that_cannot_create_its_batch_says_why_and_moves_on(db: tuple[Engine, Settings, FileStore]) -> None:
    engine, settings, store = db
    [sid] = add_schedules(engine, store, 1)
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM file"))
    make_due(engine, int(time.time()) - 10)
    assert fire_due(Core(settings, engine, CATALOGUE, store)) == []
    row = schedule(engine, sid)
    assert row.last_error is not None and "No such File object" in row.last_error
    assert row.last_batch_id is None and row.next_run_at > time.time() and row.enabled
    assert fire_due(Core(settings, engine, CATALOGUE, store)) == [], "not retried at every tick"


def test_paused_schedules_do_not_fire_and_resume_from_now(db: tuple[Engine, Settings, FileStore]) -> None:
    engine, settings, store = db
    [sid] = add_schedules(engine, store, 1, cron="* * * * * */2", timezone="UTC")
    project = schedule(engine, sid).project_id
    with session_scope(engine) as session:
        update_schedule(session, project, sid, ScheduleUpdate(enabled=False))
    make_due(engine, int(time.time()) - 100)
    assert fire_due(Core(settings, engine, CATALOGUE, store)) == []
    with session_scope(engine) as session:
        update_schedule(session, project, sid, ScheduleUpdate(enabled=True))
    assert schedule(engine, sid).next_run_at > time.time(), "runs missed while paused are not made up"
    with session_scope(engine) as session:
        update_schedule(session, project, sid, ScheduleUpdate(cron="0 2 * * *", timezone="Europe/Paris"))
    assert schedule(engine, sid).next_run_at == next_run("0 2 * * *", "Europe/Paris", time.time())
