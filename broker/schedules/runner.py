"""Firing due schedules, from the planner tick: each due run creates one batch, whoever and however often ticks.

A run is claimed by moving ``next_run_at`` on with a compare-and-set (``... WHERE next_run_at = :due``) in the
transaction that also creates the batch: a second planner, or a planner restarted mid-run, finds the time moved
and creates nothing. ``next_run_at`` moves to the first run time after *now*, so a host that was down through
several runs creates one batch on recovery, not one per missed run.
"""

import logging
import time

from sqlalchemy import Connection, Engine, text
from sqlmodel import Session

from broker.batches import create_batch, validate_batch
from broker.catalogue import Catalogue
from broker.errors import ApiError
from broker.files import FileStore
from broker.schedules.cron import next_run
from broker.schedules.manage import batch_request
from broker.settings import Settings
from broker.tables import ScheduleRow

log = logging.getLogger(__name__)
MAX_RUNS_PER_TICK = 100  #: due schedules fired in one tick; the rest are still due at the next one


def fire_due(engine: Engine, settings: Settings, catalogue: Catalogue, store: FileStore,
             at: float | None = None) -> list[str]:
    """Create a batch for every enabled schedule due by ``at`` (default: now); return the new batches' ids.

    The batches are validated here, as the API validates the ones it creates.
    """
    t = time.time() if at is None else at
    with engine.connect() as conn:
        due = conn.execute(
            text("SELECT id, next_run_at FROM schedule WHERE enabled = :on AND next_run_at <= :t "
                 "ORDER BY next_run_at LIMIT :n"),
            {"on": True, "t": t, "n": MAX_RUNS_PER_TICK},
        ).all()
    created: list[str] = []
    for schedule_id, due_at in due:
        try:
            batch_id = fire_one(engine, settings, catalogue, store, schedule_id, due_at, t)
        except Exception as exc:  # one broken schedule must not stop the others, nor the planner's tick
            log.exception("schedule %s: run due at %s failed", schedule_id, due_at)
            _skip(engine, schedule_id, due_at, t, f"internal error: {exc}")
            continue
        if batch_id is not None:
            created.append(batch_id)
    for batch_id in created:
        try:
            validate_batch(engine, store, catalogue, batch_id, settings.max_batch_lines)
        except Exception:  # the planner's stale-validation pass retries it
            log.exception("batch %s: validation after its schedule fired failed", batch_id)
    return created


def fire_one(engine: Engine, settings: Settings, catalogue: Catalogue, store: FileStore, schedule_id: str,
             due_at: int, t: float) -> str | None:
    """Claim the run due at ``due_at`` and create its batch, in one transaction; None if another took it."""
    with Session(engine) as session:
        row = session.get(ScheduleRow, schedule_id)
        if row is None or not row.enabled or row.next_run_at != due_at:
            return None
        conn = session.connection()
        if not _claim(conn, row, due_at, t):
            return None
        try:
            batch = create_batch(session, row.project_id, batch_request(row), settings.min_window_seconds,
                                 settings.webhook_allow_hosts, catalogue=catalogue, store=store)
        except ApiError as exc:  # the file was deleted, the allow-list tightened...: this run creates nothing
            log.warning("schedule %s: run due at %s created no batch: %s", schedule_id, due_at, exc.message)
            conn.execute(text("UPDATE schedule SET last_error = :e WHERE id = :id"),
                         {"e": exc.message, "id": schedule_id})
            session.commit()
            return None
        session.flush()
        conn.execute(text("UPDATE schedule SET last_batch_id = :b, last_error = NULL WHERE id = :id"),
                     {"b": batch.id, "id": schedule_id})
        session.commit()
        log.info("schedule %s: run due at %s created batch %s", schedule_id, due_at, batch.id)
        return batch.id


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
