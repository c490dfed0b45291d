"""Schedules on the API side: create, read, list, update, delete, and the wire conversion (tenant-scoped)."""

import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import cast

import orjson
from sqlmodel import Session, col

from broker.access import get_owned, page
from broker.batches import create_batch
from broker.catalogue import Catalogue
from broker.errors import InvalidRequest
from broker.ids import new_id, now
from broker.schedules.cron import check_cron, check_timezone, next_run
from broker.schedules.precheck import check_input_lines
from broker.schedules.sources import InputSources
from broker.storage import FileStore
from broker.tables import ScheduleRow, StoredFile
from schemas.batches import PRIORITY_CLASSES, BatchCreate, Constraints, Route
from schemas.requests import MAX_METADATA_PAIRS
from schemas.schedules import Schedule, ScheduleCreate, ScheduleUpdate

SCHEDULE_ID_KEY = "schedule_id"  #: metadata key that ties each created batch to its schedule


def create_schedule(session: Session, project_id: str, req: ScheduleCreate, min_window_seconds: int,
                    webhook_allow_hosts: Sequence[str] = (), sources: InputSources | None = None, *,
                    catalogue: Catalogue | None = None, store: FileStore | None = None) -> ScheduleRow:
    """Record a schedule whose batch template passes every check ``POST /v1/batches`` makes.

    An ``input_url`` is checked against ``sources`` (scheme, SSRF guard, allowed folders); without ``sources``
    only ``input_file_id`` is accepted. With ``catalogue`` and ``store``, a stored input file's lines are
    validated as each run will validate them.
    """
    cron, timezone = check_cron(req.cron), check_timezone(req.timezone)
    input_url = _check_input(req, sources)
    first_run = next_run(cron, timezone, time.time())
    metadata = req.metadata or {}
    if SCHEDULE_ID_KEY in metadata:
        raise InvalidRequest(f"The metadata key '{SCHEDULE_ID_KEY}' is set by the schedule on every batch it creates.",
                             param="metadata")
    if len(metadata) >= MAX_METADATA_PAIRS:
        raise InvalidRequest(f"A schedule's metadata may hold at most {MAX_METADATA_PAIRS - 1} pairs: its batches "
                             f"also carry '{SCHEDULE_ID_KEY}'.", param="metadata")
    row = ScheduleRow(
        id=new_id("sched"), project_id=project_id, cron=cron, timezone=timezone, input_file_id=req.input_file_id,
        input_url=input_url, endpoint=req.endpoint, completion_window=req.completion_window,
        metadata_json=orjson.dumps(req.metadata).decode() if req.metadata else None,
        constraints_json=req.constraints.model_dump_json(exclude_none=True) if req.constraints else None,
        webhook_url=req.webhook_url, max_cost_usd=req.max_cost_usd, route=req.route, enabled=req.enabled,
        created_at=now(), next_run_at=first_run,
    )
    # the template goes through create_batch's own checks (file owned and of purpose batch, endpoint, window,
    # priority, metadata, webhook URL), then the batch it built is dropped unsaved; a URL schedule has no file
    # yet, so an empty stand-in is checked instead, and dropped with the batch
    with rolled_back(session):
        input_file_id = row.input_file_id or _stand_in(session, project_id)
        probe = create_batch(session, project_id, batch_request(row, req.priority, input_file_id),
                             min_window_seconds, webhook_allow_hosts)
        row.priority, row.priority_label = probe.priority, probe.priority_label
        if row.input_file_id and catalogue is not None and store is not None:
            check_input_lines(session, catalogue, store.lines(row.input_file_id), probe)
    session.add(row)
    return row


@contextmanager
def rolled_back(session: Session) -> Iterator[None]:
    """A savepoint that is always rolled back: what the block writes is undone, whether it raises or not."""
    savepoint = session.begin_nested()
    try:
        yield
    finally:
        savepoint.rollback()


def _check_input(req: ScheduleCreate, sources: InputSources | None) -> str | None:
    """The ``input_url`` to store (None for a stored-file schedule); 400 unless exactly one input is given."""
    if req.input_file_id is not None and req.input_url is not None:
        raise InvalidRequest("Give either 'input_file_id' (a stored file) or 'input_url' (read at each run), "
                             "not both.", param="input_url")
    if req.input_url is None:
        if req.input_file_id is None:
            raise InvalidRequest("Missing required parameter: 'input_file_id' (or 'input_url', read at each run).",
                                 param="input_file_id")
        return None
    if sources is None:
        raise InvalidRequest("input_url is not accepted here; give 'input_file_id'.", param="input_url")
    return sources.check(req.input_url)


def _stand_in(session: Session, project_id: str) -> str:
    """An empty batch file of the project, for checking a URL schedule's template (rolled back after)."""
    stand_in = StoredFile(id=new_id("file"), project_id=project_id, filename="input_url", purpose="batch",
                          bytes=0, created_at=now(), path="")
    session.add(stand_in)
    session.flush()
    return stand_in.id


def batch_request(row: ScheduleRow, priority: str | int | None = None,
                  input_file_id: str | None = None) -> BatchCreate:
    """The ``POST /v1/batches`` body a run of ``row`` sends, ``metadata.schedule_id`` included.

    ``input_file_id`` is the file a URL schedule's run fetched (default: the schedule's stored file).
    """
    metadata: dict[str, str] = orjson.loads(row.metadata_json) if row.metadata_json else {}
    file_id = input_file_id or row.input_file_id
    if file_id is None:
        raise InvalidRequest(f"Schedule {row.id} reads its input from a URL: a run needs the file it fetched.",
                             param="input_url")
    return BatchCreate(
        input_file_id=file_id, endpoint=row.endpoint, completion_window=row.completion_window,
        metadata={**metadata, SCHEDULE_ID_KEY: row.id},
        priority=priority if priority is not None else _priority(row),
        constraints=Constraints.model_validate_json(row.constraints_json) if row.constraints_json else None,
        webhook_url=row.webhook_url, max_cost_usd=row.max_cost_usd, route=cast(Route, row.route),
    )


def get_schedule(session: Session, project_id: str, schedule_id: str) -> ScheduleRow:
    return get_owned(session, ScheduleRow, schedule_id, project_id, "schedule")


def list_schedules(session: Session, project_id: str, after: str | None,
                   limit: int) -> tuple[list[ScheduleRow], bool]:
    return page(session, ScheduleRow, col(ScheduleRow.project_id) == project_id, after=after, limit=limit)


def update_schedule(session: Session, project_id: str, schedule_id: str, req: ScheduleUpdate) -> ScheduleRow:
    """Pause, resume or re-time a schedule; a resumed or re-timed one runs next at its first time from now.

    Runs missed while paused are not made up. Moving ``next_run_at`` also voids any claim a planner was about
    to make on the old time (the claim compares it).
    """
    row = get_schedule(session, project_id, schedule_id)
    cron = check_cron(req.cron) if req.cron is not None else row.cron
    timezone = check_timezone(req.timezone) if req.timezone is not None else row.timezone
    enabled = req.enabled if req.enabled is not None else row.enabled
    if (cron, timezone) != (row.cron, row.timezone) or (enabled and not row.enabled):
        row.next_run_at = next_run(cron, timezone, time.time())
    row.cron, row.timezone, row.enabled = cron, timezone, enabled
    session.add(row)
    return row


def delete_schedule(session: Session, project_id: str, schedule_id: str) -> None:
    """Remove the schedule; batches it created stay, still carrying its id in their metadata."""
    session.delete(get_schedule(session, project_id, schedule_id))


def to_wire(row: ScheduleRow) -> Schedule:
    return Schedule(
        id=row.id, cron=row.cron, timezone=row.timezone, input_file_id=row.input_file_id, input_url=row.input_url,
        endpoint=row.endpoint,
        completion_window=row.completion_window, priority=_priority(row), route=row.route,
        webhook_url=row.webhook_url, metadata=orjson.loads(row.metadata_json) if row.metadata_json else None,
        constraints=Constraints.model_validate_json(row.constraints_json) if row.constraints_json else None,
        max_cost_usd=row.max_cost_usd, enabled=row.enabled, created_at=row.created_at,
        next_run_at=row.next_run_at if row.enabled else None, last_run_at=row.last_run_at,
        last_batch_id=row.last_batch_id, last_error=row.last_error,
    )


def _priority(row: ScheduleRow) -> str | int:
    """A class name as sent; an integer priority as the integer it was (as on the Batch object)."""
    return row.priority_label if row.priority_label in PRIORITY_CLASSES else row.priority
