"""Schedule wire shapes (our extension): a cron expression in a time zone that creates a batch at each run."""

from typing import Literal

from pydantic import BaseModel, StrictInt

from schemas.batches import Constraints, Route
from schemas.requests import CostCap, Metadata, RequestBody

DEFAULT_TIMEZONE = "UTC"  #: IANA zone a schedule's cron is read in when none is given


class ScheduleCreate(RequestBody):
    """Body of ``POST /v1/schedules``: when to run (``cron``, ``timezone``) and the batch to create each time.

    ``cron`` has five fields, or six where the sixth counts seconds (``"* * * * * */30"``: every 30 s).
    The input is exactly one of ``input_file_id`` (a stored file of purpose ``batch``) or ``input_url``, read at
    each run: ``https://…``/``http://…`` is downloaded, ``file:///a/folder`` gives its newest ``*.jsonl`` file.
    The batch fields are those of ``POST /v1/batches``, extensions included.
    """

    cron: str
    timezone: str = DEFAULT_TIMEZONE
    input_file_id: str | None = None
    input_url: str | None = None
    endpoint: str
    completion_window: str = "24h"
    metadata: Metadata = None
    priority: StrictInt | str = "normal"
    constraints: Constraints | None = None
    webhook_url: str | None = None
    max_cost_usd: CostCap = None
    route: Route = "auto"
    enabled: bool = True


class ScheduleUpdate(RequestBody):
    """Body of ``POST /v1/schedules/{id}``: pause or resume, or move it to another time; unset fields stay."""

    enabled: bool | None = None
    cron: str | None = None
    timezone: str | None = None


class Schedule(BaseModel):
    id: str
    object: Literal["schedule"] = "schedule"
    cron: str
    timezone: str
    input_file_id: str | None = None  #: the stored file each run uses (None when ``input_url`` provides it)
    input_url: str | None = None  #: the URL or folder each run reads its input file from
    endpoint: str
    completion_window: str
    priority: str | int
    route: str
    webhook_url: str | None = None
    metadata: dict[str, str] | None = None
    constraints: Constraints | None = None
    max_cost_usd: float | None = None
    enabled: bool
    created_at: int
    next_run_at: int | None = None  #: when the next batch is created (None while paused)
    last_run_at: int | None = None
    last_batch_id: str | None = None  #: the batch created by the last run (None until one was)
    last_error: str | None = None  #: why the last run created no batch (None when it did)


class ScheduleList(BaseModel):
    object: Literal["list"] = "list"
    data: list[Schedule]
    first_id: str | None = None
    last_id: str | None = None
    has_more: bool = False


class ScheduleDeleted(BaseModel):
    id: str
    object: Literal["schedule.deleted"] = "schedule.deleted"
    deleted: bool = True
