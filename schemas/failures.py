"""Extension: a batch's failed lines grouped by why they failed (``GET /v1/batches/{id}/failures``)."""

from typing import Literal

from pydantic import BaseModel, Field


class FailureGroup(BaseModel):
    code: str  #: our error code (``budget_exceeded``…), else the upstream's, else ``http_<status>``
    status_code: int | None = None  #: the upstream's HTTP status, when it answered
    count: int
    message: str | None = None  #: the first failed line's message (lowest line number)
    custom_id: str | None = None  #: that line's custom_id


class FailureGroups(BaseModel):
    object: Literal["list"] = "list"
    data: list[FailureGroup] = Field(default_factory=list)  #: most frequent first
