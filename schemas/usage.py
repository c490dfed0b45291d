"""``GET /v1/usage`` (extension): usage and cost per day, provider, model and route."""

from typing import Literal

from pydantic import BaseModel


class UsageRow(BaseModel):
    """One day of one model's usage: per provider and route, or per API key with ``group_by=api_key_id``."""

    object: Literal["usage.daily"] = "usage.daily"
    day: str
    project_id: str | None = None
    provider: str | None = None
    model: str | None = None  #: None when totalled by another column (``group_by``)
    route: str | None = None
    api_key_id: str | None = None
    requests: int
    input_tokens: int
    output_tokens: int
    cost_usd: float


class UsageReport(BaseModel):
    object: Literal["list"] = "list"
    data: list[UsageRow]
    total_requests: int
    total_cost_usd: float
    month_to_date_cost_usd: float  #: this calendar month (UTC), whatever the dates asked
    monthly_budget_usd: float | None = None  #: the project's cap: dispatch stops when the month reaches it
