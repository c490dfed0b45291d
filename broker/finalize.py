"""Ending batches: output and error files written from the line rows, then the final status.

Transitions the planner drives here: ``in_progress`` with every line ended -> ``finalizing`` -> ``completed``;
``in_progress`` past ``expires_at`` -> ``expired`` (open lines fail with ``batch_expired``); ``cancelling``
with nothing in flight -> ``cancelled`` (open lines fail with ``batch_cancelled``). Finished lines are kept.
"""

import logging
import secrets
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import Engine, text
from sqlmodel import Session

from broker.files import FileStore, register_file
from broker.ids import new_id, now

log = logging.getLogger(__name__)
FINALIZE_CLAIM_SECONDS = 600.0  #: another planner may redo a finalization silent this long
STREAM_ROWS = 2_000  #: line rows fetched per round trip while writing result files
_END_MESSAGES = {
    "expired": ("batch_expired", "This request could not be executed before the completion window expired."),
    "cancelled": ("batch_cancelled", "This request was not executed because the batch was cancelled."),
}


def claim(engine: Engine, batch_id: str, status: str) -> bool:
    t = now()
    with engine.begin() as conn:
        return conn.execute(
            text("UPDATE batch SET claimed_until = :until WHERE id = :id AND status = :status "
                 "AND (claimed_until IS NULL OR claimed_until < :now)"),
            {"until": t + FINALIZE_CLAIM_SECONDS, "id": batch_id, "status": status, "now": t},
        ).rowcount == 1


def fail_open_lines(engine: Engine, batch_id: str, end_status: str) -> int:
    """Close every line not yet ended with the end status' error code; returns how many."""
    code, message = _END_MESSAGES[end_status]
    with engine.begin() as conn:
        n = conn.execute(
            text("UPDATE line SET status = 'failed', error_code = :code, error_message = :msg, "
                 "response_status = NULL, response_body = NULL, lease_until = NULL, finished_at = :t "
                 "WHERE batch_id = :b AND status IN ('pending', 'queued')"),
            {"code": code, "msg": message, "t": now(), "b": batch_id},
        ).rowcount
        conn.execute(text("UPDATE batch SET failed = failed + :n WHERE id = :b"), {"n": n, "b": batch_id})
    return int(n)


def write_results(engine: Engine, store: FileStore, batch_id: str, final_status: str) -> None:
    """Write output/error files and set the final status with its timestamp, in one last transaction."""
    out_tmp, err_tmp = store.temp_path(), store.temp_path()
    counts = _write_files(engine, batch_id, out_tmp, err_tmp)
    with Session(engine) as session:
        conn = session.connection()
        project_id, expires_after = conn.execute(
            text("SELECT project_id, output_expires_after FROM batch WHERE id = :id"), {"id": batch_id}
        ).one()
        out_id = err_id = None
        if counts[0]:
            out_id = register_file(session, store, project_id=project_id, source=out_tmp,
                                   filename=f"{batch_id}_output.jsonl", purpose="batch_output",
                                   expires_after=expires_after).id
        if counts[1]:
            err_id = register_file(session, store, project_id=project_id, source=err_tmp,
                                   filename=f"{batch_id}_error.jsonl", purpose="batch_output",
                                   expires_after=expires_after).id
        conn.execute(
            text(f"UPDATE batch SET status = :s, {final_status}_at = :t, output_file_id = :o, "
                 "error_file_id = :e, claimed_until = NULL WHERE id = :id"),
            {"s": final_status, "t": now(), "o": out_id, "e": err_id, "id": batch_id},
        )
        session.commit()
    for path in (out_tmp, err_tmp):
        store.remove(path)
    log.info("batch %s %s: %d output lines, %d error lines", batch_id, final_status, *counts)


def _write_files(engine: Engine, batch_id: str, out_path: Path, err_path: Path) -> tuple[int, int]:
    counts = [0, 0]
    prefix = "batch_req_" + secrets.token_hex(6)
    with engine.connect() as conn, out_path.open("wb") as out, err_path.open("wb") as err:
        result = conn.execution_options(stream_results=True, yield_per=STREAM_ROWS).execute(
            text("SELECT id, custom_id, status, response_status, response_body, request_id, error_code, "
                 "error_message FROM line WHERE batch_id = :b ORDER BY idx"),
            {"b": batch_id},
        )
        for line_id, custom_id, status, r_status, r_body, request_id, e_code, e_msg in result:
            entry = _output_line(f"{prefix}{line_id:010x}", custom_id, r_status, r_body, request_id, e_code, e_msg)
            ok = status == "succeeded"
            (out if ok else err).write(entry)
            counts[0 if ok else 1] += 1
        conn.rollback()
    return counts[0], counts[1]


def _output_line(req_id: str, custom_id: str, r_status: int | None, r_body: str | None,
                 request_id: str | None, e_code: str | None, e_msg: str | None) -> bytes:
    head = orjson.dumps({"id": req_id, "custom_id": custom_id})[:-1]
    if r_status is not None:
        response = orjson.dumps({"status_code": r_status, "request_id": request_id or new_id("req")})[:-1]
        body = (r_body or "{}").encode()
        return head + b',"response":' + response + b',"body":' + body + b'},"error":null}\n'
    error: dict[str, Any] = {"code": e_code or "unknown_error", "message": e_msg or ""}
    return head + b',"response":null,"error":' + orjson.dumps(error) + b"}\n"
