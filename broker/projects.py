"""Projects: create, list, read, change (name, monthly budget, default regions, model access) and archive.

An archived project's keys stop working (broker/auth.py); its data stays, readable by admin keys.
"""

import time
from typing import Any

import orjson
from sqlalchemy import text
from sqlmodel import Session, col, func, select

from broker.access import page
from broker.audit import Actor, record
from broker.errors import Conflict, InvalidRequest, NotFound
from broker.ids import new_id, now
from broker.model_access import allowed_models, blocked_models, set_model_access
from broker.tables import Project
from broker.usage import month_start
from schemas import admin as wire

ACTIVE, ARCHIVED = "active", "archived"


def regions_of(project: Project) -> list[str] | None:
    return orjson.loads(project.regions_json) if project.regions_json else None


def month_to_date_cost(session: Session, project_id: str | None, at: float | None = None) -> float:
    """What the project's lines (every project's, for None) have cost since the first of this month (UTC)."""
    scope = "" if project_id is None else "project_id = :p AND "
    spent = session.connection().execute(
        text(f"SELECT COALESCE(SUM(cost_usd), 0) FROM usage_daily WHERE {scope}day >= :month"),
        {"p": project_id, "month": month_start(at or time.time())},
    ).scalar_one()
    return float(spent)


def monthly_budget(session: Session, project_id: str | None) -> float | None:
    """The project's monthly budget; for None, the sum of every project's (None when none has one)."""
    if project_id is not None:
        project = session.get(Project, project_id)
        return project.monthly_budget_usd if project else None
    total = session.exec(select(func.sum(Project.monthly_budget_usd))).one()
    return float(total) if total is not None else None


def to_wire(session: Session, row: Project) -> wire.Project:
    return wire.Project(id=row.id, name=row.name, created_at=row.created_at, archived_at=row.archived_at,
                        status=ACTIVE if row.status == ACTIVE else ARCHIVED,
                        monthly_budget_usd=row.monthly_budget_usd,
                        month_to_date_cost_usd=round(month_to_date_cost(session, row.id), 8),
                        regions=regions_of(row), allowed_models=allowed_models(row),
                        blocked_models=blocked_models(row))


def _unique_name(session: Session, name: str, except_id: str | None = None) -> None:
    other = session.exec(select(Project).where(col(Project.name) == name)).first()
    if other is not None and other.id != except_id:
        raise Conflict(f"A project named '{name}' exists already ({other.id}).", param="name",
                       code="project_name_taken")


def _apply(row: Project, fields: dict[str, Any]) -> None:
    """Set the policies present in ``fields`` (a model dump holding only what the caller sent)."""
    if "name" in fields:
        if not fields["name"]:
            raise InvalidRequest("A project's name cannot be empty.", param="name")
        row.name = fields["name"]
    if "monthly_budget_usd" in fields:
        row.monthly_budget_usd = fields["monthly_budget_usd"]
    if "regions" in fields:
        row.regions_json = orjson.dumps(fields["regions"]).decode() if fields["regions"] else None
    if "allowed_models" in fields or "blocked_models" in fields:
        set_model_access(row, fields.get("allowed_models", allowed_models(row)),
                         fields.get("blocked_models", blocked_models(row)))


def create_project(session: Session, req: wire.ProjectCreate, actor: Actor) -> Project:
    _unique_name(session, req.name)
    row = Project(id=new_id("proj"), name=req.name, created_at=now())
    _apply(row, req.model_dump(exclude_unset=True))
    session.add(row)
    session.flush()
    record(session, actor, "project.created", project_id=row.id, object_id=row.id,
           details={"data": req.model_dump(exclude_unset=True)})
    return row


def get_project(session: Session, project_id: str) -> Project:
    row = session.get(Project, project_id)
    if row is None:
        raise NotFound(f"No such project: {project_id}", param="project_id")
    return row


def list_projects(session: Session, after: str | None, limit: int,
                  include_archived: bool) -> tuple[list[Project], bool]:
    filters = [] if include_archived else [col(Project.status) == ACTIVE]
    return page(session, Project, *filters, after=after, limit=limit, order="asc")


def update_project(session: Session, project_id: str, req: wire.ProjectUpdate, actor: Actor) -> Project:
    row = get_project(session, project_id)
    changes = req.model_dump(exclude_unset=True)
    if row.status == ARCHIVED:
        raise InvalidRequest(f"Project {project_id} is archived and cannot be changed.", code="project_archived")
    if changes.get("name"):
        _unique_name(session, changes["name"], except_id=row.id)
    _apply(row, changes)
    session.add(row)
    record(session, actor, "project.updated", project_id=row.id, object_id=row.id,
           details={"changes_requested": changes})
    return row


def archive_project(session: Session, project_id: str, actor: Actor) -> Project:
    row = get_project(session, project_id)
    if row.status != ARCHIVED:
        row.status, row.archived_at = ARCHIVED, now()
        session.add(row)
        record(session, actor, "project.archived", project_id=row.id, object_id=row.id)
    return row
