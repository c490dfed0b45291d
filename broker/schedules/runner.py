"""Firing due schedules, from the planner tick: each due run creates one batch, whoever and however often ticks.

A run is claimed by moving ``next_run_at`` on with a compare-and-set (``... WHERE next_run_at = :due``) in the
transaction that also creates the batch: a second planner, or a planner restarted mid-run, finds the time moved
and creates nothing. ``next_run_at`` moves to the first run time after *now*, so a host that was down through
several runs creates one batch on recovery, not one per missed run.

A schedule with an ``input_url`` fetches its file first, with no transaction open (``sources``); then the claim,
the stored file and the batch go in one transaction as above. Two planners may both fetch a run's file, but only
the one whose claim wins keeps it. A fetch that fails still claims the run, records why in ``last_error`` and
creates nothing: the schedule runs again at its next time. At most ``MAX_FETCHES_PER_TICK`` files are fetched
per tick, so dispatch runs between downloads; other due URL schedules fire at the following ticks.
"""

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TypeGuard

from sqlalchemy import Connection, Engine, text
from sqlmodel import Session

from broker.batches import create_batch
from broker.core import Core
from broker.errors import ApiError
from broker.files import record_file
from broker.ids import new_id
from broker.intake import validate_batch
from broker.schedules.cron import next_run
from broker.schedules.manage import batch_request
from broker.schedules.sources import InputSources, SourceError
from broker.tables import ScheduleRow

log = logging.getLogger(__name__)
MAX_RUNS_PER_TICK = 100  #: due schedules fired in one tick; the rest are still due at the next one
MAX_FETCHES_PER_TICK = 1  #: input_url files fetched in one tick (each may take a while); the rest wait a tick


def fire_due(core: Core, at: float | None = None, sources: InputSources | None = None) -> list[str]:
    """Create a batch for every enabled schedule due by ``at`` (default: now); return the new batches' ids.

    The batches are validated here, as the API validates the ones it creates. ``sources`` (default: from
    ``settings``) is what URL schedules may read.
    """
    engine = core.engine
    t = time.time() if at is None else at
    sources = sources or InputSources.from_settings(core.settings)
    with engine.connect() as conn:
        due = conn.execute(
            text("SELECT id, next_run_at, input_url FROM schedule WHERE enabled = :on AND next_run_at <= :t "
                 "ORDER BY next_run_at LIMIT :n"),
            {"on": True, "t": t, "n": MAX_RUNS_PER_TICK},
        ).all()
    created: list[str] = []
    fetches = 0
    for schedule_id, due_at, input_url in due:
        if input_url is not None:
            if fetches == MAX_FETCHES_PER_TICK:
                continue  # still due: a following tick fetches it
            fetches += 1
        try:
            batch_id = fire_one(core, schedule_id, due_at, t, sources)
        except Exception as exc:  # one broken schedule must not stop the others, nor the planner's tick
            log.exception("schedule %s: run due at %s failed", schedule_id, due_at)
            _skip(engine, schedule_id, due_at, t, f"internal error: {exc}")
            continue
        if batch_id is not None:
            created.append(batch_id)
    for batch_id in created:
        try:
            validate_batch(core, batch_id)
        except Exception:  # the planner's stale-validation pass retries it
            log.exception("batch %s: validation after its schedule fired failed", batch_id)
    return created


def fire_one(core: Core, schedule_id: str, due_at: int, t: float, sources: InputSources | None = None) -> str | None:
    """Claim the run due at ``due_at`` and create its batch, in one transaction; None if another took it.

    A URL schedule's file is fetched before that transaction opens.
    """
    with Session(core.engine) as session:
        row = session.get(ScheduleRow, schedule_id)
        if not _still_due(row, due_at):
            return None
        input_url = row.input_url
    if input_url is None:
        return _create(core, schedule_id, due_at, t, None)
    store = core.store
    fetched = _fetch(sources or InputSources.from_settings(core.settings), input_url, store.temp_path())
    batch_id = None
    try:
        if fetched.error is None:  # into the store before the transaction: no connection waits on an upload
            fetched.file_id = new_id("file")
            fetched.size = store.put_path(fetched.file_id, fetched.path)
        batch_id = _create(core, schedule_id, due_at, t, fetched)
        return batch_id
    finally:
        store.discard_temp(fetched.path)  # gone already if it went into the store
        if batch_id is None and fetched.file_id is not None:
            store.remove(fetched.file_id)  # the run created no batch (or another planner's did): nothing keeps it


@dataclass
class Fetched:
    """A URL schedule's input for one run: the file fetched to ``path`` as ``name``, or why there is none."""

    path: Path
    name: str = ""
    error: str | None = None
    file_id: str | None = None  #: its key in the store, once moved there
    size: int = 0


def _fetch(sources: InputSources, url: str, path: Path) -> Fetched:
    try:
        return Fetched(path, sources.fetch(url, path))
    except SourceError as exc:
        return Fetched(path, error=f"input_url: {exc}")


def _create(core: Core, schedule_id: str, due_at: int, t: float, fetched: Fetched | None) -> str | None:
    """Claim the run and create its batch (from ``fetched`` when given), in one transaction."""
    settings, store = core.settings, core.store
    with Session(core.engine) as session:
        row = session.get(ScheduleRow, schedule_id)
        if not _still_due(row, due_at):
            return None
        conn = session.connection()
        if not _claim(conn, row, due_at, t):
            return None
        file_id: str | None = None
        try:
            with session.begin_nested():  # a refused batch leaves neither itself nor the file fetched for it
                if fetched is not None:
                    file_id = _store_fetched(session, row, fetched)
                batch = create_batch(session, row.project_id, batch_request(row, input_file_id=file_id),
                                     settings.min_window_seconds, settings.webhook_allow_hosts,
                                     catalogue=core.catalogue, store=store)
        except (ApiError, SourceError) as exc:  # fetch failed, file deleted, allow-list tightened...: no batch
            message = exc.message if isinstance(exc, ApiError) else str(exc)
            log.warning("schedule %s: run due at %s created no batch: %s", schedule_id, due_at, message)
            conn.execute(text("UPDATE schedule SET last_error = :e WHERE id = :id"),
                         {"e": message, "id": schedule_id})
            session.commit()
            return None
        session.flush()
        conn.execute(text("UPDATE schedule SET last_batch_id = :b, last_error = NULL WHERE id = :id"),
                     {"b": batch.id, "id": schedule_id})
        session.commit()
        log.info("schedule %s: run due at %s created batch %s", schedule_id, due_at, batch.id)
        return batch.id


def _still_due(row: ScheduleRow | None, due_at: int) -> TypeGuard[ScheduleRow]:
    return row is not None and row.enabled and row.next_run_at == due_at


def _store_fetched(session: Session, row: ScheduleRow, fetched: Fetched) -> str:
    """Record the fetched file (in the store already) as a new batch file of the schedule's project; its id."""
    if fetched.error is not None or fetched.file_id is None:
        raise SourceError(fetched.error or "input_url: nothing fetched")
    stored = record_file(session, file_id=fetched.file_id, size=fetched.size, project_id=row.project_id,
                         filename=fetched.name, purpose="batch")
    session.flush()
    return stored.id


def _claim(conn: Connection, row: ScheduleRow, due_at: int, t: float) -> bool:
    """Move the schedule from ``due_at`` to its next run after ``t``; False when someone else already did."""
    return conn.execute(
        text("UPDATE schedule SET next_run_at = :next, last_run_at = :t "
             "WHERE id = :id AND next_run_at = :due AND enabled = :on"),
        {"next": next_run(row.cron, row.timezone, t), "t": int(t), "id": row.id, "due": due_at, "on": True},
    ).rowcount == 1


def _skip(engine: Engine, schedule_id: str, due_at: int, t: float, message: str) -> None:
    """Pass over a run that failed unexpectedly, so it is not retried every tick; pause a schedule that cannot go on."""
    try:
        with Session(engine) as session:
            row = session.get(ScheduleRow, schedule_id)
            if row is None or row.next_run_at != due_at:
                return
            try:
                row.next_run_at = next_run(row.cron, row.timezone, t)
            except ApiError:
                row.enabled = False
            row.last_run_at, row.last_error = int(t), message
            session.add(row)
            session.commit()
    except Exception:
        log.exception("schedule %s: could not record the failed run", schedule_id)
