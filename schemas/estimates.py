"""``POST /v1/files/{id}/estimate`` (extension): tokens and cost of a batch file before it runs."""

from typing import Literal

from pydantic import BaseModel


class RouteCost(BaseModel):
    provider: str
    route: str
    cost_usd: float


class ModelEstimate(BaseModel):
    model: str
    lines: int
    input_tokens: int
    output_tokens: int
    routes: list[RouteCost]  #: cheapest first


class FileEstimate(BaseModel):
    object: Literal["file.estimate"] = "file.estimate"
    file_id: str
    lines: int
    input_tokens: int
    output_tokens: int
    cost_usd: float  #: every model on its cheapest route
    models: list[ModelEstimate]
