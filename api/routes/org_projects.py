"""``/v1/organization/projects`` (OpenAI's Administration API): create, list, retrieve, modify, archive, and the
project's rate limits per model. Admin keys only. Our extensions on the project object: monthly budget, default
regions and model access.
"""

from typing import Annotated

from fastapi import APIRouter, Query

from api.deps import AdminDep, ContextDep, SessionDep
from api.openapi import errors
from broker import project_limits as limits
from broker import projects as service
from schemas.admin import Project, ProjectCreate, ProjectList, ProjectUpdate, RateLimit, RateLimitList, RateLimitUpdate
from schemas.pages import cursor_page

router = APIRouter(prefix="/v1/organization/projects", tags=["organization"])


@router.post("", response_model=Project, responses=errors(409))
def create_project(body: ProjectCreate, admin: AdminDep, session: SessionDep) -> Project:
    row = service.create_project(session, body, admin.actor)
    session.commit()
    return service.to_wire(session, row)


@router.get("", response_model=ProjectList)
def list_projects(_: AdminDep, session: SessionDep, after: str | None = None,
                  limit: Annotated[int, Query(ge=1, le=100)] = 20, include_archived: bool = False) -> ProjectList:
    rows, has_more = service.list_projects(session, after, limit, include_archived)
    return cursor_page(ProjectList, [service.to_wire(session, r) for r in rows], has_more)


@router.get("/{project_id}", response_model=Project)
def retrieve_project(project_id: str, _: AdminDep, session: SessionDep) -> Project:
    return service.to_wire(session, service.get_project(session, project_id))


@router.post("/{project_id}", response_model=Project, responses=errors(409))
def modify_project(project_id: str, body: ProjectUpdate, admin: AdminDep, session: SessionDep) -> Project:
    """Rename, and set or clear (``null``) the monthly budget, default regions and model lists."""
    row = service.update_project(session, project_id, body, admin.actor)
    session.commit()
    return service.to_wire(session, row)


@router.post("/{project_id}/archive", response_model=Project)
def archive_project(project_id: str, admin: AdminDep, session: SessionDep, ctx: ContextDep) -> Project:
    """Its keys stop working at once; its files and batches stay readable with an admin key."""
    row = service.archive_project(session, project_id, admin.actor)
    session.commit()
    ctx.forget_keys()
    return service.to_wire(session, row)


def _rate_limit(model: str, rpm: int | None, tpm: int | None) -> RateLimit:
    return RateLimit(id=limits.rate_limit_id(model), model=model, max_requests_per_1_minute=rpm,
                     max_tokens_per_1_minute=tpm)


@router.get("/{project_id}/rate_limits", response_model=RateLimitList)
def list_rate_limits(project_id: str, ctx: ContextDep, _: AdminDep, session: SessionDep) -> RateLimitList:
    """One entry per model of the catalogue, with the project's own limits on it (null: none)."""
    service.get_project(session, project_id)
    own = limits.limits_of(session, project_id)
    data = [_rate_limit(m, own[m].rpm if m in own else None, own[m].tpm if m in own else None)
            for m in ctx.core.catalogue.model_names()]
    return cursor_page(RateLimitList, data, False)


@router.post("/{project_id}/rate_limits/{rate_limit_id}", response_model=RateLimit)
def modify_rate_limit(project_id: str, rate_limit_id: str, body: RateLimitUpdate, ctx: ContextDep,
                      admin: AdminDep, session: SessionDep) -> RateLimit:
    """Set the project's requests and/or tokens per minute on the model; workers apply it within seconds."""
    service.get_project(session, project_id)
    model = limits.model_of(rate_limit_id, ctx.core.catalogue.model_names())
    current = limits.limits_of(session, project_id).get(model)
    changes = body.model_dump(exclude_unset=True)
    rpm = changes.get("max_requests_per_1_minute", current.rpm if current else None)
    tpm = changes.get("max_tokens_per_1_minute", current.tpm if current else None)
    limits.set_limit(session, admin.actor, project_id, model, rpm, tpm)
    session.commit()
    return _rate_limit(model, rpm, tpm)
