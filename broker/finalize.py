"""Ending batches: which running batches end and how, then output and error files written from the line rows and
the final status set.

Every transition out of a running batch is decided here (``advance_batches``, from the planner's tick):
``in_progress`` with every line ended -> ``finalizing`` -> ``completed``; ``in_progress`` past ``expires_at`` ->
``expired`` (open lines fail with ``batch_expired``); ``in_progress`` past a budget (broker/budget.py) with
nothing in flight -> ``completed`` (open lines fail with ``budget_exceeded``); ``cancelling`` with nothing in
flight -> ``cancelled`` (open lines fail with ``batch_cancelled``). Finished lines are kept.
"""

import logging
from pathlib import Path

from sqlalchemy import Engine, text
from sqlmodel import Session

from broker.budget import OVER_CAP, OVER_MONTHLY, WINDING_DOWN, month_params
from broker.claims import claim, kept_alive
from broker.core import Core
from broker.files import complete_file, record_file
from broker.ids import new_id, now
from broker.result_lines import iter_lines
from broker.storage import FileStore
from broker.webhooks.events import enqueue_batch_event

log = logging.getLogger(__name__)
_END_MESSAGES = {
    "expired": ("batch_expired", "This request could not be executed before the completion window expired."),
    "cancelled": ("batch_cancelled", "This request was not executed because the batch was cancelled."),
    "budget": ("budget_exceeded", "This request was not executed: the batch reached its max_cost_usd."),
    "monthly_budget": ("budget_exceeded",
                       "This request was not executed: the project or API key reached its monthly budget."),
}  #: why open lines were closed -> their error code and message
_ENDING = "('in_progress', 'cancelling', 'finalizing')"  #: statuses a batch is ended from (once)


def advance_batches(core: Core) -> None:
    """End every running batch that is done, expired, past a budget or cancelled, and redo stalled finalizations."""
    t = now()
    month = month_params(t)
    with core.engine.connect() as conn:
        rows = conn.execute(
            text("SELECT id, status, total, completed, failed, expires_at, claimed_until, "
                 f"{OVER_CAP}, {OVER_MONTHLY} FROM batch "
                 "WHERE status IN ('in_progress', 'cancelling', 'finalizing')"),
            month,
        ).all()
        busy = {r[0] for r in conn.execute(  # batches winding down that still have calls in flight
            text("SELECT DISTINCT batch_id FROM line WHERE status = 'queued' AND lease_until >= :now "
                 f"AND batch_id IN (SELECT id FROM batch WHERE {WINDING_DOWN}) "
                 "UNION SELECT DISTINCT batch_id FROM remote_batch WHERE status != 'ended' "
                 f"AND batch_id IN (SELECT id FROM batch WHERE {WINDING_DOWN})"),
            {"now": t, **month},
        )}
    for batch_id, status, total, done, failed, expires_at, claimed_until, over_budget, over_monthly in rows:
        if status == "in_progress" and done + failed >= total:
            _end(core, batch_id, "in_progress", "completed")
        elif status == "in_progress" and expires_at is not None and expires_at <= t:
            _end(core, batch_id, "in_progress", "expired")
        elif status == "in_progress" and (over_budget or over_monthly) and batch_id not in busy:
            reason = "budget" if over_budget else "monthly_budget"
            _end(core, batch_id, "in_progress", "completed", close_reason=reason)
        elif status == "cancelling" and batch_id not in busy:
            _end(core, batch_id, "cancelling", "cancelled")
        elif status == "finalizing" and (claimed_until is None or claimed_until < t):
            _end(core, batch_id, "finalizing", "completed")  # a planner died mid-way: redo it


def _end(core: Core, batch_id: str, status: str, final_status: str, close_reason: str | None = None) -> None:
    """End the batch; lines still open are closed with ``close_reason`` (the final status by default)."""
    engine = core.engine
    if not claim(engine, batch_id, status):
        return
    reason = close_reason or (final_status if final_status != "completed" else None)
    with kept_alive(engine, batch_id):
        if reason is not None:
            fail_open_lines(engine, batch_id, reason)
        if final_status == "completed":
            with engine.begin() as conn:
                if not conn.execute(
                    text(f"UPDATE batch SET status = 'finalizing', finalizing_at = :t WHERE id = :id "
                         f"AND status IN {_ENDING}"),
                    {"t": now(), "id": batch_id},
                ).rowcount:
                    return  # we stalled past our claim and another process ended the batch meanwhile
        write_results(engine, core.store, batch_id, final_status)


def fail_open_lines(engine: Engine, batch_id: str, reason: str) -> int:
    """Close every line not yet ended with the error code of ``reason`` (see _END_MESSAGES); returns how many."""
    code, message = _END_MESSAGES[reason]
    with engine.begin() as conn:
        if conn.dialect.name == "postgresql":  # line locks in id order, as every writer of lines takes them
            conn.execute(text("SELECT id FROM line WHERE batch_id = :b AND status IN ('pending', 'queued', 'batched') "
                              "ORDER BY id FOR UPDATE"), {"b": batch_id})
        n = conn.execute(
            text("UPDATE line SET status = 'failed', error_code = :code, error_message = :msg, "
                 "response_status = NULL, response_body = NULL, lease_until = NULL, finished_at = :t "
                 "WHERE batch_id = :b AND status IN ('pending', 'queued', 'batched')"),
            {"code": code, "msg": message, "t": now(), "b": batch_id},
        ).rowcount
        conn.execute(text("UPDATE batch SET failed = failed + :n WHERE id = :b"), {"n": n, "b": batch_id})
    return int(n)


def write_results(engine: Engine, store: FileStore, batch_id: str, final_status: str) -> None:
    """Write output/error files and set the final status with its timestamp, in one last transaction.

    The output file keeps the id it was given when the batch started (partial reads used it). The bytes go to the
    store before that transaction opens: no database connection waits on an upload.
    """
    out_tmp, err_tmp = store.temp_path(), store.temp_path()
    try:
        counts = _write_files(engine, batch_id, out_tmp, err_tmp)
        with engine.connect() as conn:
            project_id, expires_after, announced = conn.execute(
                text("SELECT project_id, output_expires_after, output_file_id FROM batch WHERE id = :id"),
                {"id": batch_id},
            ).one()
        out_id = announced or (new_id("file") if counts[0] else None)
        err_id = new_id("file") if counts[1] else None
        sizes = {key: store.put_path(key, tmp) for key, tmp in ((out_id, out_tmp), (err_id, err_tmp)) if key}
        with Session(engine) as session:
            conn = session.connection()
            if out_id is not None and not complete_file(session, out_id, sizes[out_id]):
                record_file(session, file_id=out_id, size=sizes[out_id], project_id=project_id,
                            filename=f"{batch_id}_output.jsonl", purpose="batch_output", expires_after=expires_after)
            if err_id is not None:
                record_file(session, file_id=err_id, size=sizes[err_id], project_id=project_id,
                            filename=f"{batch_id}_error.jsonl", purpose="batch_output", expires_after=expires_after)
            ended = conn.execute(
                text(f"UPDATE batch SET status = :s, {final_status}_at = :t, output_file_id = :o, "
                     f"error_file_id = :e, claimed_until = NULL WHERE id = :id AND status IN {_ENDING}"),
                {"s": final_status, "t": now(), "o": out_id, "e": err_id, "id": batch_id},
            ).rowcount
            if not ended:  # we stalled past our claim and another process ended the batch: its files stand
                session.rollback()
                for key in (err_id, None if announced else out_id):  # an announced id's bytes are the winner's
                    if key is not None:
                        store.remove(key)
                log.warning("batch %s was ended by another process while this one wrote its files", batch_id)
                return
            enqueue_batch_event(conn, batch_id)  # same transaction: a batch never ends without its event
            session.commit()
    finally:
        for path in (out_tmp, err_tmp):
            store.discard_temp(path)
    log.info("batch %s %s: %d output lines, %d error lines", batch_id, final_status, *counts)


def _write_files(engine: Engine, batch_id: str, out_path: Path, err_path: Path) -> tuple[int, int]:
    counts = [0, 0]
    with engine.connect() as conn:
        for n, (path, succeeded) in enumerate(((out_path, True), (err_path, False))):
            with path.open("wb") as fh:
                for line in iter_lines(conn, batch_id, succeeded):
                    fh.write(line)
                    counts[n] += 1
        conn.rollback()
    return counts[0], counts[1]
