"""``GET /v1/organization/audit_logs`` (OpenAI's shape and filters): admin keys only."""

from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Query
from sqlmodel import Session

from api.deps import AdminDep, SessionDep
from broker.audit import AuditFilter, list_events
from broker.tables import AuditLog as AuditRow
from broker.tables import Project
from schemas.admin import AuditLog, AuditLogList
from schemas.pages import cursor_page

router = APIRouter(prefix="/v1/organization", tags=["organization"])



def _wire(session: Session, row: AuditRow) -> AuditLog:
    project = session.get(Project, row.project_id) if row.project_id else None
    subject: dict[str, Any] = {"id": row.object_id, **(orjson.loads(row.details_json) if row.details_json else {})}
    return AuditLog.model_validate({
        "id": row.id, "type": row.type, "effective_at": row.effective_at,
        "project": {"id": project.id, "name": project.name} if project else None,
        "actor": {"type": "api_key", "ip_address": row.ip,
                  "api_key": {"id": row.actor_key_id, "type": row.actor_kind}},
        row.type: subject,
    })


@router.get("/audit_logs", response_model=AuditLogList)
def list_audit_logs(
    _: AdminDep, session: SessionDep, after: str | None = None, limit: Annotated[int, Query(ge=1, le=100)] = 20,
    event_types: Annotated[list[str] | None, Query(alias="event_types[]")] = None,
    actor_ids: Annotated[list[str] | None, Query(alias="actor_ids[]")] = None,
    project_ids: Annotated[list[str] | None, Query(alias="project_ids[]")] = None,
    resource_ids: Annotated[list[str] | None, Query(alias="resource_ids[]")] = None,
    gt: Annotated[int | None, Query(alias="effective_at[gt]")] = None,
    gte: Annotated[int | None, Query(alias="effective_at[gte]")] = None,
    lt: Annotated[int | None, Query(alias="effective_at[lt]")] = None,
    lte: Annotated[int | None, Query(alias="effective_at[lte]")] = None,
) -> AuditLogList:
    """Newest first. ``effective_at[gt|gte|lt|lte]`` bound the time; the list filters match any of their values."""
    lower = max((b for b in (gt, gte - 1 if gte is not None else None) if b is not None), default=None)
    upper = min((b for b in (lt, lte + 1 if lte is not None else None) if b is not None), default=None)
    rows, has_more = list_events(session, AuditFilter(event_types, actor_ids, project_ids, resource_ids, lower, upper),
                                 after, limit)
    return cursor_page(AuditLogList, [_wire(session, r) for r in rows], has_more)
