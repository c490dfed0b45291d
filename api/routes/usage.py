"""``GET /v1/usage`` (extension): the caller's project's usage and cost, per day, provider, model and route, or
per day, API key and model (``group_by=api_key_id``)."""

import datetime as dt
from typing import Annotated, Literal

from fastapi import APIRouter, Query
from sqlmodel import select

from api.deps import ScopeDep, SessionDep
from api.openapi import errors
from broker.errors import InvalidRequest
from broker.projects import month_to_date_cost
from broker.tables import Project
from broker.usage import usage_rows, usage_rows_by_key
from schemas.usage import UsageReport, UsageRow

router = APIRouter(tags=["usage"])


def _day(value: str | None, param: str) -> str | None:
    if value is None:
        return None
    try:
        return dt.date.fromisoformat(value).isoformat()
    except ValueError:
        raise InvalidRequest(f"{param} must be a date like 2026-11-25.", param=param) from None


@router.get("/v1/usage", response_model=UsageReport, responses=errors(404))
def usage(project_id: ScopeDep, session: SessionDep,
          start_date: Annotated[str | None, Query(description="First UTC day, YYYY-MM-DD")] = None,
          end_date: Annotated[str | None, Query(description="Last UTC day, YYYY-MM-DD")] = None,
          group_by: Annotated[Literal["api_key_id"] | None, Query(description="api_key_id: spend per key")] = None,
          ) -> UsageReport:
    read = usage_rows_by_key if group_by == "api_key_id" else usage_rows
    rows = [UsageRow.model_validate(r, from_attributes=True)
            for r in read(session, project_id, _day(start_date, "start_date"), _day(end_date, "end_date"))]
    if project_id is None:  # every project: the month's spend and budgets of them all
        projects = list(session.exec(select(Project)))
        spent = sum(month_to_date_cost(session, p.id) for p in projects)
        budgets = [p.monthly_budget_usd for p in projects if p.monthly_budget_usd is not None]
        budget = sum(budgets) if budgets else None
    else:
        project = session.get(Project, project_id)
        spent, budget = month_to_date_cost(session, project_id), project.monthly_budget_usd if project else None
    return UsageReport(data=rows, total_requests=sum(r.requests for r in rows),
                       total_cost_usd=round(sum(r.cost_usd for r in rows), 8),
                       month_to_date_cost_usd=round(spent, 8), monthly_budget_usd=budget)
