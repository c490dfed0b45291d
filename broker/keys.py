"""Key management for admins: create, list (redacted), read, change, revoke and rotate project and admin keys.

Rotation gives the key a new value and keeps the old one working for a grace period, under the same key id (so
its spend, budget and history carry on).
"""

from typing import Any

from sqlmodel import Session, col

from broker.access import page
from broker.audit import Actor, record
from broker.auth import ADMIN, PROJECT, issue_key, new_value, redacted, set_value
from broker.errors import InvalidRequest, NotFound
from broker.ids import now
from broker.projects import ARCHIVED
from broker.tables import ApiKey, Project
from schemas import admin as wire


def _grace_left(row: ApiKey) -> int | None:
    until = row.previous_valid_until
    return until if until is not None and until > now() else None


def project_key_wire(row: ApiKey) -> wire.ProjectApiKey:
    assert row.project_id is not None
    return wire.ProjectApiKey(id=row.id, name=row.name, redacted_value=redacted(row), created_at=row.created_at,
                              last_used_at=row.last_used_at, expires_at=row.expires_at, project_id=row.project_id,
                              scope="read_only" if row.scope == "read_only" else "all",
                              monthly_budget_usd=row.monthly_budget_usd,
                              previous_value_expires_at=_grace_left(row))


def admin_key_wire(row: ApiKey) -> wire.AdminApiKey:
    return wire.AdminApiKey(id=row.id, name=row.name, redacted_value=redacted(row), created_at=row.created_at,
                            last_used_at=row.last_used_at, expires_at=row.expires_at,
                            previous_value_expires_at=_grace_left(row))


def _check_expiry(expires_at: int | None) -> None:
    if expires_at is not None and expires_at <= now():
        raise InvalidRequest("expires_at must be in the future.", param="expires_at")


def create(session: Session, actor: Actor, req: wire.KeyCreate, project: Project | None) -> tuple[ApiKey, str]:
    """A new project key (``project`` given) or admin key; returns the row and the value (shown this once)."""
    _check_expiry(req.expires_at)
    if project is not None and project.status == ARCHIVED:
        raise InvalidRequest(f"Project {project.id} is archived: it takes no new keys.", code="project_archived")
    if project is None and (req.scope != "all" or req.monthly_budget_usd is not None):
        raise InvalidRequest("Admin keys have no scope or budget.", param="scope")
    row, value = issue_key(session, PROJECT if project else ADMIN, project.id if project else None, name=req.name,
                           scope=req.scope, expires_at=req.expires_at, monthly_budget_usd=req.monthly_budget_usd)
    record(session, actor, "api_key.created", project_id=row.project_id, object_id=row.id,
           details={"data": {"kind": row.kind, "name": row.name, "scope": row.scope}})
    return row, value


def _filters(project_id: str | None) -> list[Any]:
    live = col(ApiKey.revoked_at).is_(None)
    if project_id is None:
        return [col(ApiKey.kind) == ADMIN, live]
    return [col(ApiKey.kind) == PROJECT, col(ApiKey.project_id) == project_id, live]


def list_keys(session: Session, project_id: str | None, after: str | None, limit: int) -> tuple[list[ApiKey], bool]:
    """The live keys of a project, or the admin keys (``project_id`` None), oldest first."""
    return page(session, ApiKey, *_filters(project_id), after=after, limit=limit, order="asc")


def get_key(session: Session, project_id: str | None, key_id: str) -> ApiKey:
    """A live key of the project (or an admin key); any other id is a 404."""
    row = session.get(ApiKey, key_id)
    kind = ADMIN if project_id is None else PROJECT
    if row is None or row.revoked_at is not None or row.kind != kind or row.project_id != project_id:
        raise NotFound(f"No such API key: {key_id}", param="key_id")
    return row


def update(session: Session, actor: Actor, row: ApiKey, req: wire.KeyUpdate) -> ApiKey:
    changes = req.model_dump(exclude_unset=True)
    if "expires_at" in changes:
        _check_expiry(changes["expires_at"])
    if row.kind == ADMIN and changes.get("monthly_budget_usd") is not None:
        raise InvalidRequest("Admin keys have no budget.", param="monthly_budget_usd")
    for name, value in changes.items():
        setattr(row, name, "" if name == "name" and value is None else value)
    session.add(row)
    record(session, actor, "api_key.updated", project_id=row.project_id, object_id=row.id,
           details={"changes_requested": changes})
    return row


def revoke(session: Session, actor: Actor, row: ApiKey) -> None:
    row.revoked_at = now()
    session.add(row)
    record(session, actor, "api_key.deleted", project_id=row.project_id, object_id=row.id)


def rotate(session: Session, actor: Actor, row: ApiKey, grace_seconds: int) -> str:
    """Give the key a new value; the current one keeps working ``grace_seconds`` more. Returns the new value."""
    previous = row.key_hash
    value = new_value(row.kind)
    set_value(row, value)
    row.previous_hash, row.previous_valid_until = previous, now() + grace_seconds
    session.add(row)
    record(session, actor, "api_key.rotated", project_id=row.project_id, object_id=row.id,
           details={"grace_period_seconds": grace_seconds})
    return value
