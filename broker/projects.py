"""Project policies an operator sets: a monthly budget and the regions a project's batches default to."""

import time

import orjson
from sqlalchemy import text
from sqlmodel import Session

from broker.auth import get_or_create_project
from broker.errors import InvalidRequest
from broker.tables import Project
from broker.usage import month_start

KEEP = object()  #: leave a policy as it is


def configure_project(session: Session, name: str, monthly_budget_usd: float | None | object = KEEP,
                      regions: list[str] | None | object = KEEP) -> Project:
    """Set (or clear, with None) the project's monthly budget and default regions; the project is created if new."""
    project = get_or_create_project(session, name)
    if monthly_budget_usd is not KEEP:
        if isinstance(monthly_budget_usd, float | int) and monthly_budget_usd < 0:
            raise InvalidRequest("A monthly budget cannot be negative.", param="monthly_budget_usd")
        project.monthly_budget_usd = monthly_budget_usd  # type: ignore[assignment]
    if regions is not KEEP:
        project.regions_json = orjson.dumps(regions).decode() if regions else None
    session.add(project)
    return project


def regions_of(project: Project) -> list[str] | None:
    return orjson.loads(project.regions_json) if project.regions_json else None


def month_to_date_cost(session: Session, project_id: str, at: float | None = None) -> float:
    """What the project's lines have cost since the first of this month (UTC)."""
    spent = session.connection().execute(
        text("SELECT COALESCE(SUM(cost_usd), 0) FROM usage_daily WHERE project_id = :p AND day >= :month"),
        {"p": project_id, "month": month_start(at or time.time())},
    ).scalar_one()
    return float(spent)
