"""API keys over the Administration API: ``/v1/organization/projects/{id}/api_keys`` and
``/v1/organization/admin_api_keys``. Create shows the value once; lists show ``redacted_value``; delete revokes;
rotate (extension) issues a new value and keeps the old one working for a grace period. Admin keys only."""

from typing import Annotated

from fastapi import APIRouter, Body, Query

from api.deps import AdminDep, ContextDep, SessionDep
from broker import keys as service
from broker.projects import get_project
from schemas import admin as wire
from schemas.pages import cursor_page

router = APIRouter(prefix="/v1/organization", tags=["organization"])
PROJECT_KEYS = "/projects/{project_id}/api_keys"
ADMIN_KEYS = "/admin_api_keys"
Limit = Annotated[int, Query(ge=1, le=100)]
Rotate = Annotated[wire.KeyRotate, Body(default_factory=wire.KeyRotate)]


@router.post(PROJECT_KEYS, response_model=wire.ProjectApiKeyWithValue)
def create_project_key(project_id: str, body: wire.KeyCreate, admin: AdminDep,
                       session: SessionDep) -> wire.ProjectApiKeyWithValue:
    row, value = service.create(session, admin.actor, body, get_project(session, project_id))
    session.commit()
    return wire.ProjectApiKeyWithValue(**service.project_key_wire(row).model_dump(), value=value)


@router.get(PROJECT_KEYS, response_model=wire.ProjectApiKeyList)
def list_project_keys(project_id: str, _: AdminDep, session: SessionDep, after: str | None = None,
                      limit: Limit = 20) -> wire.ProjectApiKeyList:
    get_project(session, project_id)
    rows, has_more = service.list_keys(session, project_id, after, limit)
    return cursor_page(wire.ProjectApiKeyList, [service.project_key_wire(r) for r in rows], has_more)


@router.get(PROJECT_KEYS + "/{key_id}", response_model=wire.ProjectApiKey)
def retrieve_project_key(project_id: str, key_id: str, _: AdminDep, session: SessionDep) -> wire.ProjectApiKey:
    return service.project_key_wire(service.get_key(session, project_id, key_id))


@router.post(PROJECT_KEYS + "/{key_id}", response_model=wire.ProjectApiKey)
def modify_project_key(project_id: str, key_id: str, body: wire.KeyUpdate, admin: AdminDep,
                       session: SessionDep) -> wire.ProjectApiKey:
    """Rename, or set the expiry or monthly budget (``null`` clears them)."""
    row = service.update(session, admin.actor, service.get_key(session, project_id, key_id), body)
    session.commit()
    return service.project_key_wire(row)


@router.delete(PROJECT_KEYS + "/{key_id}", response_model=wire.KeyDeleted)
def delete_project_key(project_id: str, key_id: str, admin: AdminDep, session: SessionDep,
                       ctx: ContextDep) -> wire.KeyDeleted:
    service.revoke(session, admin.actor, service.get_key(session, project_id, key_id))
    session.commit()
    ctx.forget_keys()
    return wire.KeyDeleted(id=key_id, object="organization.project.api_key.deleted")


@router.post(PROJECT_KEYS + "/{key_id}/rotate", response_model=wire.ProjectApiKeyWithValue)
def rotate_project_key(project_id: str, key_id: str, admin: AdminDep, session: SessionDep,
                       body: Rotate) -> wire.ProjectApiKeyWithValue:
    row = service.get_key(session, project_id, key_id)
    value = service.rotate(session, admin.actor, row, body.grace_period_seconds)
    session.commit()
    return wire.ProjectApiKeyWithValue(**service.project_key_wire(row).model_dump(), value=value)


@router.post(ADMIN_KEYS, response_model=wire.AdminApiKeyWithValue)
def create_admin_key(body: wire.KeyCreate, admin: AdminDep, session: SessionDep) -> wire.AdminApiKeyWithValue:
    row, value = service.create(session, admin.actor, body, None)
    session.commit()
    return wire.AdminApiKeyWithValue(**service.admin_key_wire(row).model_dump(), value=value)


@router.get(ADMIN_KEYS, response_model=wire.AdminApiKeyList)
def list_admin_keys(_: AdminDep, session: SessionDep, after: str | None = None,
                    limit: Limit = 20) -> wire.AdminApiKeyList:
    rows, has_more = service.list_keys(session, None, after, limit)
    return cursor_page(wire.AdminApiKeyList, [service.admin_key_wire(r) for r in rows], has_more)


@router.get(ADMIN_KEYS + "/{key_id}", response_model=wire.AdminApiKey)
def retrieve_admin_key(key_id: str, _: AdminDep, session: SessionDep) -> wire.AdminApiKey:
    return service.admin_key_wire(service.get_key(session, None, key_id))


@router.delete(ADMIN_KEYS + "/{key_id}", response_model=wire.KeyDeleted)
def delete_admin_key(key_id: str, admin: AdminDep, session: SessionDep, ctx: ContextDep) -> wire.KeyDeleted:
    service.revoke(session, admin.actor, service.get_key(session, None, key_id))
    session.commit()
    ctx.forget_keys()
    return wire.KeyDeleted(id=key_id, object="organization.admin_api_key.deleted")


@router.post(ADMIN_KEYS + "/{key_id}/rotate", response_model=wire.AdminApiKeyWithValue)
def rotate_admin_key(key_id: str, admin: AdminDep, session: SessionDep, body: Rotate) -> wire.AdminApiKeyWithValue:
    row = service.get_key(session, None, key_id)
    value = service.rotate(session, admin.actor, row, body.grace_period_seconds)
    session.commit()
    return wire.AdminApiKeyWithValue(**service.admin_key_wire(row).model_dump(), value=value)
