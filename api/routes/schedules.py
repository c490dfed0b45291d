"""``/v1/schedules`` (extension): cron schedules that create a batch at each run, from a stored input file or from
the file a URL or folder (``input_url``) provides at that time."""

from typing import Annotated

from fastapi import APIRouter, Query

from api.deps import ContextDep, ProjectDep, SessionDep
from api.openapi import errors
from broker.schedules import manage as service
from broker.schedules.sources import InputSources
from schemas.pages import cursor_page
from schemas.schedules import Schedule, ScheduleCreate, ScheduleDeleted, ScheduleList, ScheduleUpdate

router = APIRouter(prefix="/v1/schedules", tags=["schedules"])


@router.post("", response_model=Schedule, responses=errors(404))
def create_schedule(body: ScheduleCreate, ctx: ContextDep, project_id: ProjectDep, session: SessionDep) -> Schedule:
    row = service.create_schedule(session, project_id, body, ctx.core.settings.min_window_seconds,
                                  ctx.core.settings.webhook_allow_hosts, InputSources.from_settings(ctx.core.settings),
                                  catalogue=ctx.core.catalogue, store=ctx.core.store)
    session.commit()
    return service.to_wire(row)


@router.get("", response_model=ScheduleList)
def list_schedules(project_id: ProjectDep, session: SessionDep, after: str | None = None,
                   limit: Annotated[int, Query(ge=1, le=100)] = 20) -> ScheduleList:
    rows, has_more = service.list_schedules(session, project_id, after, limit)
    data = [service.to_wire(r) for r in rows]
    return cursor_page(ScheduleList, data, has_more)


@router.get("/{schedule_id}", response_model=Schedule)
def retrieve_schedule(schedule_id: str, project_id: ProjectDep, session: SessionDep) -> Schedule:
    return service.to_wire(service.get_schedule(session, project_id, schedule_id))


@router.post("/{schedule_id}", response_model=Schedule)
def update_schedule(schedule_id: str, body: ScheduleUpdate, project_id: ProjectDep,
                    session: SessionDep) -> Schedule:
    """Pause (``enabled: false``), resume, or change ``cron`` / ``timezone``."""
    row = service.update_schedule(session, project_id, schedule_id, body)
    session.commit()
    return service.to_wire(row)


@router.delete("/{schedule_id}", response_model=ScheduleDeleted)
def delete_schedule(schedule_id: str, project_id: ProjectDep, session: SessionDep) -> ScheduleDeleted:
    service.delete_schedule(session, project_id, schedule_id)
    session.commit()
    return ScheduleDeleted(id=schedule_id)
