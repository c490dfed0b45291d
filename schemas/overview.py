"""``GET /v1/overview`` (extension): what the dashboard's first page shows, in one read."""

from typing import Literal

from pydantic import BaseModel, Field


class FailureCount(BaseModel):
    code: str  #: our error code, else the upstream's, else ``http_<status>``
    count: int


class AtRiskBatch(BaseModel):
    id: str
    project_id: str
    status: str
    expires_at: int | None = None
    estimated_completion_at: int | None = None
    total: int
    done: int  #: lines completed or failed so far


class Overview(BaseModel):
    object: Literal["overview"] = "overview"
    project_id: str | None  #: None: every project (an admin's ``project_id=all``)
    lines_per_second: float  #: lines that ended in the last minute, per second
    batches_by_status: dict[str, int]  #: running batches (validating, in_progress, finalizing, cancelling)
    cost_today_usd: float
    month_to_date_cost_usd: float
    monthly_budget_usd: float | None = None  #: the project's cap (the sum of the caps over every project)
    at_risk: list[AtRiskBatch] = Field(default_factory=list)  #: running batches unlikely to end within their window
    failures_last_hour: list[FailureCount] = Field(default_factory=list)  #: most frequent first
