"""``GET /v1/usage`` (extension): usage and cost per day, provider, model and route."""

from typing import Literal

from pydantic import BaseModel


class UsageRow(BaseModel):
    object: Literal["usage.daily"] = "usage.daily"
    day: str
    provider: str
    model: str
    route: str
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
