"""Batch lifecycle on the API side: create, read, list, cancel, retry, and the wire conversion.

Validation is broker/intake.py's; ending a batch is broker/finalize.py's.
"""

import logging
import time
from collections.abc import Sequence
from typing import Any

import orjson
from sqlalchemy import text
from sqlmodel import Session, col, select

from broker.access import get_owned, page
from broker.admission import estimate
from broker.catalogue import Catalogue
from broker.durations import parse_window
from broker.errors import InvalidRequest, RateLimited
from broker.files import get_file
from broker.ids import new_id, now
from broker.ranking import ActiveBatch
from broker.storage import FileStore
from broker.tables import BatchRow, StoredFile
from broker.webhooks.ssrf import require_safe_url
from schemas.batches import (
    BATCH_ENDPOINTS,
    PRIORITY_CLASSES,
    Batch,
    BatchCreate,
    BatchErrors,
    BatchUsage,
    Constraints,
    RequestCounts,
)
from schemas.requests import MAX_PRIORITY, MAX_TIMESTAMP

log = logging.getLogger(__name__)


def _priority(value: str | int) -> tuple[int, str]:
    if isinstance(value, int):
        if not -MAX_PRIORITY <= value <= MAX_PRIORITY:
            raise InvalidRequest(f"Invalid priority {value}: an integer priority lies between {-MAX_PRIORITY} and "
                                 f"{MAX_PRIORITY}.", param="priority")
        return value, str(value)
    if value not in PRIORITY_CLASSES:
        names = ", ".join(PRIORITY_CLASSES)
        raise InvalidRequest(f"Invalid priority '{value}': use one of {names} or an integer.", param="priority")
    return PRIORITY_CLASSES[value], value


def create_batch(session: Session, project_id: str, req: BatchCreate, min_window_seconds: int,
                 webhook_allow_hosts: Sequence[str] = (), *, catalogue: Catalogue | None = None,
                 store: FileStore | None = None) -> BatchRow:
    """Record a new ``validating`` batch; with a catalogue and store, estimate its completion first."""
    if req.endpoint not in BATCH_ENDPOINTS:
        raise InvalidRequest(
            f"Invalid endpoint '{req.endpoint}'. Supported: {', '.join(BATCH_ENDPOINTS)}.", param="endpoint"
        )
    source = get_file(session, project_id, req.input_file_id)
    if source.purpose != "batch":
        raise InvalidRequest(f"File {source.id} has purpose '{source.purpose}'; a batch needs purpose 'batch'.",
                             param="input_file_id")
    if req.webhook_url:
        require_safe_url(req.webhook_url, webhook_allow_hosts, param="webhook_url")
    window = parse_window(req.completion_window, min_seconds=min_window_seconds)
    rank, label = _priority(req.priority)
    created = now()
    if req.not_before is not None and not 0 <= req.not_before <= MAX_TIMESTAMP:
        raise InvalidRequest(f"not_before must be a unix time between 0 and {MAX_TIMESTAMP}.", param="not_before")
    start = max(created, req.not_before or 0)
    if start + window > MAX_TIMESTAMP:
        raise InvalidRequest(f"The batch would expire after {MAX_TIMESTAMP} (2038-01-19), the latest time we store: "
                             "shorten completion_window or move not_before earlier.", param="completion_window")
    guess = None
    if catalogue is not None and store is not None:
        guess = estimate(session, catalogue, store.stream(source.id), req.endpoint, rank, start)
        if guess is not None and not guess.feasible(start + window) and req.admission == "strict":
            raise RateLimited(
                f"This batch ({guess.lines} lines, {guess.lines_ahead} lines ahead of it at about "
                f"{guess.lines_per_second:.0f} lines/s on {guess.provider}) cannot finish within "
                f"{req.completion_window}. The earliest feasible completion_window is {guess.earliest_window(start)}.",
                param="completion_window", code="window_infeasible",
            )
    row = BatchRow(
        id=new_id("batch"), project_id=project_id, endpoint=req.endpoint, input_file_id=source.id,
        completion_window=req.completion_window, status="validating", created_at=created,
        expires_at=start + window, metadata_json=_dumps(req.metadata),
        output_expires_after=req.output_expires_after.seconds if req.output_expires_after else None,
        priority=rank, priority_label=label, not_before=req.not_before,
        constraints_json=_dumps(req.constraints.model_dump(exclude_none=True) if req.constraints else None),
        webhook_url=req.webhook_url, max_cost_usd=req.max_cost_usd, route=req.route,
        estimated_completion_at=guess.completion_at if guess else None,
    )
    session.add(row)
    return row


def get_batch(session: Session, project_id: str, batch_id: str) -> BatchRow:
    return get_owned(session, BatchRow, batch_id, project_id, "Batch")


def list_batches(session: Session, project_id: str | None, after: str | None, limit: int, *,
                 status: str | None = None, model: str | None = None, route: str | None = None,
                 ) -> tuple[list[BatchRow], bool]:
    """A page of the project's batches (every project's when ``project_id`` is None), newest first, filtered."""
    if not 1 <= limit <= 100:
        raise InvalidRequest("limit must be between 1 and 100.", param="limit")
    filters = [col(column) == value for column, value in (
        (BatchRow.project_id, project_id), (BatchRow.status, status), (BatchRow.model, model),
        (BatchRow.route, route)) if value is not None]
    return page(session, BatchRow, *filters, after=after, limit=limit)


def cancel_batch(session: Session, project_id: str, batch_id: str) -> BatchRow:
    """Stop new dispatch; the planner ends it ``cancelled`` once in-flight lines have come back."""
    row = get_batch(session, project_id, batch_id)
    if row.status in ("validating", "in_progress"):
        # a running validation notices the status change and keeps nothing, so its claim is void
        row.status, row.cancelling_at, row.claimed_until = "cancelling", now(), None
        session.add(row)
    elif row.status != "cancelling":
        raise InvalidRequest(f"Cannot cancel a batch with status '{row.status}'.", code="batch_not_cancellable")
    return row


RUNNING = ("validating", "in_progress", "finalizing", "cancelling")
RETRYABLE = ("completed", "expired", "cancelled")


def batch_of_output_file(session: Session, file_id: str) -> BatchRow | None:
    """The batch whose output file this is, if any."""
    return session.exec(select(BatchRow).where(col(BatchRow.output_file_id) == file_id)).first()


def retry_failed(session: Session, store: FileStore, project_id: str, batch_id: str) -> BatchRow:
    """Run a finished batch's failed lines again, in place: same batch, same output file, a fresh window.

    Lines that succeeded stay as they are; the error file is dropped and written anew at the end.
    """
    row = get_batch(session, project_id, batch_id)
    if row.status not in RETRYABLE or row.total == 0:
        raise InvalidRequest(f"Only a finished batch with failed lines can be retried; this one is '{row.status}'.",
                             code="batch_not_retryable")
    if row.failed == 0:
        raise InvalidRequest("This batch has no failed lines to retry.", code="batch_not_retryable")
    conn = session.connection()
    reset = conn.execute(
        text("UPDATE line SET status = 'pending', attempts = 0, not_before = 0, lease_until = NULL, "
             "response_status = NULL, response_body = NULL, request_id = NULL, error_code = NULL, "
             "error_message = NULL, result_seq = NULL, finished_at = NULL "
             "WHERE batch_id = :b AND status = 'failed'"),
        {"b": row.id},
    ).rowcount
    if row.error_file_id is not None:
        old_errors = session.get(StoredFile, row.error_file_id)
        if old_errors is not None:
            session.delete(old_errors)
            store.remove(old_errors.id)
    window = parse_window(row.completion_window, min_seconds=1)
    t = now()
    row.failed -= reset
    row.status, row.error_file_id, row.expires_at = "in_progress", None, t + window
    row.finalizing_at = row.completed_at = row.expired_at = row.cancelled_at = row.cancelling_at = None
    session.add(row)
    return row


def to_wire(row: BatchRow) -> Batch:
    errors = BatchErrors.model_validate_json(row.errors_json) if row.errors_json else None
    return Batch(
        id=row.id, endpoint=row.endpoint, model=row.model, errors=errors, input_file_id=row.input_file_id,
        completion_window=row.completion_window, status=row.status,
        output_file_id=row.output_file_id, error_file_id=row.error_file_id, created_at=row.created_at,
        in_progress_at=row.in_progress_at, expires_at=row.expires_at, finalizing_at=row.finalizing_at,
        completed_at=row.completed_at, failed_at=row.failed_at, expired_at=row.expired_at,
        cancelling_at=row.cancelling_at, cancelled_at=row.cancelled_at,
        request_counts=RequestCounts(total=row.total, completed=row.completed, failed=row.failed),
        usage=BatchUsage(input_tokens=row.input_tokens, output_tokens=row.output_tokens,
                         total_tokens=row.input_tokens + row.output_tokens),
        metadata=orjson.loads(row.metadata_json) if row.metadata_json else None,
        # a class name is shown as sent; an integer priority is shown as the integer it was
        priority=row.priority_label if row.priority_label in PRIORITY_CLASSES else row.priority,
        not_before=row.not_before,
        constraints=Constraints.model_validate_json(row.constraints_json) if row.constraints_json else None,
        webhook_url=row.webhook_url, max_cost_usd=row.max_cost_usd, route=row.route, provider=row.provider,
        routes=orjson.loads(row.plan_json) if row.plan_json else None,
        cost_usd=round(row.cost_usd, 8), project_id=row.project_id, **progress(row),
    )


def progress(row: BatchRow) -> dict[str, Any]:
    """Live completion estimate and risk flag: from the batch's own pace once it runs, else the admission guess."""
    if row.status == "validating":
        late = row.estimated_completion_at is not None and row.expires_at is not None and \
            row.estimated_completion_at > row.expires_at
        return {"estimated_completion_at": row.estimated_completion_at, "at_risk": late}
    if row.status != "in_progress":
        return {"estimated_completion_at": row.estimated_completion_at, "at_risk": False}
    t = time.time()
    active = ActiveBatch(row.id, row.project_id, row.endpoint, row.priority, row.created_at, row.expires_at,
                         row.in_progress_at, row.total - row.completed - row.failed, row.completed + row.failed)
    eta = row.estimated_completion_at
    if active.in_progress_at and (finish := active.finish_at(t)) is not None:
        eta = int(finish)
    risky = active.at_risk(t) or (eta is not None and row.expires_at is not None and eta > row.expires_at)
    return {"estimated_completion_at": eta, "at_risk": risky}


def _dumps(value: object) -> str | None:
    return orjson.dumps(value).decode() if value is not None else None


