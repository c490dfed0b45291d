"""``GET /v1/models`` objects."""

from typing import Literal

from pydantic import BaseModel


class ModelPricing(BaseModel):
    """Extension: USD per 1M tokens."""

    input: float = 0.0
    output: float = 0.0


class Model(BaseModel):
    id: str
    object: Literal["model"] = "model"
    created: int
    owned_by: str
    pricing: ModelPricing | None = None  #: extension, from the provider catalogue


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[Model]
