"""``GET /v1/models`` objects."""

from typing import Literal

from pydantic import BaseModel


class ModelPricing(BaseModel):
    """Extension: USD per 1M tokens."""

    input: float = 0.0
    output: float = 0.0
    cached_input: float | None = None


class OffPeak(BaseModel):
    days: list[str]
    start: str  #: UTC, HH:MM[:SS]
    end: str
    multiplier: float


class Deployment(BaseModel):
    """Extension: one provider serving the model, in fallback order."""

    provider: str
    regions: list[str]
    pricing: ModelPricing
    batch_discount: float | None = None  #: off the real-time price on the provider's batch API; None: no batch API
    off_peak: list[OffPeak] = []


class Model(BaseModel):
    id: str
    object: Literal["model"] = "model"
    created: int
    owned_by: str
    pricing: ModelPricing | None = None  #: extension, from the provider catalogue (the first deployment's)
    deployments: list[Deployment] = []  #: extension: every provider serving it, in fallback order


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[Model]
