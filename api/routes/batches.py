"""``/v1/batches``: create, retrieve, list, cancel (OpenAI's Batch API, with our extension fields)."""

from typing import Annotated

from fastapi import APIRouter, BackgroundTasks, Query

from api.context import ApiContext
from api.deps import CallerDep, ContextDep, ProjectDep, ScopeDep, SessionDep
from api.openapi import errors
from broker import batches as service
from broker.intake import validate_batch
from schemas.batches import Batch, BatchCreate, BatchList, BatchStatus, Route
from schemas.pages import cursor_page

router = APIRouter(prefix="/v1/batches", tags=["batches"])


def _validate_then_wake(ctx: ApiContext, batch_id: str) -> None:
    validate_batch(ctx.core, batch_id)
    ctx.wake_planner()


@router.post("", response_model=Batch, responses=errors(404, 429))
def create_batch(body: BatchCreate, background: BackgroundTasks, ctx: ContextDep, project_id: ProjectDep,
                 caller: CallerDep, session: SessionDep) -> Batch:
    core = ctx.core
    row = service.create_batch(session, project_id, body, core.settings.min_window_seconds,
                               core.settings.webhook_allow_hosts, catalogue=core.catalogue, store=core.store)
    row.api_key_id = caller.key_id  # spend per key (GET /v1/usage?group_by=api_key_id)
    session.commit()
    background.add_task(_validate_then_wake, ctx, row.id)
    return service.to_wire(row)


@router.get("", response_model=BatchList, responses=errors(404))
def list_batches(scope: ScopeDep, session: SessionDep, after: str | None = None,
                 limit: Annotated[int, Query(ge=1, le=100)] = 20,
                 status: Annotated[BatchStatus | None, Query(description="Extension: only batches in this status")]
                 = None,
                 model: Annotated[str | None, Query(description="Extension: only batches of this model")] = None,
                 route: Annotated[Route | None, Query(description="Extension: only batches asking this route")] = None,
                 ) -> BatchList:
    rows, has_more = service.list_batches(session, scope, after, limit, status=status, model=model, route=route)
    data = [service.to_wire(r) for r in rows]
    return cursor_page(BatchList, data, has_more)


@router.get("/{batch_id}", response_model=Batch)
def retrieve_batch(batch_id: str, project_id: ProjectDep, session: SessionDep) -> Batch:
    return service.to_wire(service.get_batch(session, project_id, batch_id))


@router.post("/{batch_id}/cancel", response_model=Batch)
def cancel_batch(batch_id: str, ctx: ContextDep, project_id: ProjectDep, session: SessionDep) -> Batch:
    row = service.cancel_batch(session, project_id, batch_id)
    session.commit()
    ctx.wake_planner()
    return service.to_wire(row)


@router.post("/{batch_id}/retry", response_model=Batch)
def retry_batch(batch_id: str, ctx: ContextDep, project_id: ProjectDep, session: SessionDep) -> Batch:
    """Extension: run the batch's failed lines again, in place."""
    row = service.retry_failed(session, ctx.core.store, project_id, batch_id)
    session.commit()
    ctx.wake_planner()
    return service.to_wire(row)
