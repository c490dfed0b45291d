"""``GET /v1/usage`` (extension): the caller's project's usage and cost, per day, provider, model and route, or
per day, API key and model (``group_by=api_key_id``)."""

import datetime as dt
from typing import Annotated, Literal

from fastapi import APIRouter, Query

from api.deps import ScopeDep, SessionDep
from api.openapi import errors
from broker.errors import InvalidRequest
from broker.projects import month_to_date_cost, monthly_budget
from broker.usage import usage_rows, usage_rows_by_key, usage_totals
from schemas.usage import UsageReport, UsageRow

router = APIRouter(tags=["usage"])
GroupBy = Literal["api_key_id", "model", "provider", "route", "project_id"]


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
          group_by: Annotated[GroupBy | None, Query(description=(
              "api_key_id: spend per key, day and model; model, provider, route or project_id: totals per day and "
              "that column only (what a chart stacks)"))] = None,
          ) -> UsageReport:
    start, end = _day(start_date, "start_date"), _day(end_date, "end_date")
    if group_by is None or group_by == "api_key_id":
        read = usage_rows_by_key if group_by == "api_key_id" else usage_rows
        rows = [UsageRow.model_validate(r, from_attributes=True) for r in read(session, project_id, start, end)]
    else:
        rows = [UsageRow(**r) for r in usage_totals(session, project_id, start, end, group_by)]
    return UsageReport(data=rows, total_requests=sum(r.requests for r in rows),
                       total_cost_usd=round(sum(r.cost_usd for r in rows), 8),
                       month_to_date_cost_usd=round(month_to_date_cost(session, project_id), 8),
                       monthly_budget_usd=monthly_budget(session, project_id))
