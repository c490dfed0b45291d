"""The audit log: who (key, role, address) did what to which object, when; kept in SQL, read by admins.

Event types follow OpenAI's audit log names where it has one (``project.created``, ``api_key.deleted``, …);
ours: ``api_key.rotated`` and ``api_key.used_from_new_ip``.
"""

from dataclasses import dataclass
from typing import Any

import orjson
from sqlmodel import Session, col

from broker.access import page
from broker.ids import new_id, now
from broker.tables import AuditLog


@dataclass(frozen=True)
class Actor:
    """Who acts: a key (None when authentication is off), its kind (admin | project) and the caller's address."""

    key_id: str | None
    kind: str
    ip: str | None


def record(session: Session, actor: Actor, type_: str, *, project_id: str | None = None,
           object_id: str | None = None, details: dict[str, Any] | None = None) -> AuditLog:
    """Add an event to the log in the caller's transaction (it is kept only if the action is)."""
    row = AuditLog(id=new_id("audit_log"), type=type_, effective_at=now(), actor_key_id=actor.key_id,
                   actor_kind=actor.kind, ip=actor.ip, project_id=project_id, object_id=object_id,
                   details_json=orjson.dumps(details).decode() if details else None)
    session.add(row)
    return row


@dataclass(frozen=True)
class AuditFilter:
    types: list[str] | None = None
    actor_ids: list[str] | None = None
    project_ids: list[str] | None = None
    resource_ids: list[str] | None = None
    after_time: int | None = None  #: effective_at > this
    before_time: int | None = None  #: effective_at < this


def list_events(session: Session, where: AuditFilter, after: str | None, limit: int) -> tuple[list[AuditLog], bool]:
    """The events matching every given filter, newest first."""
    filters: list[Any] = []
    if where.types:
        filters.append(col(AuditLog.type).in_(where.types))
    if where.actor_ids:
        filters.append(col(AuditLog.actor_key_id).in_(where.actor_ids))
    if where.project_ids:
        filters.append(col(AuditLog.project_id).in_(where.project_ids))
    if where.resource_ids:
        filters.append(col(AuditLog.object_id).in_(where.resource_ids))
    if where.after_time is not None:
        filters.append(col(AuditLog.effective_at) > where.after_time)
    if where.before_time is not None:
        filters.append(col(AuditLog.effective_at) < where.before_time)
    return page(session, AuditLog, *filters, after=after, limit=limit)
