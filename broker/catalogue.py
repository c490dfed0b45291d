"""Provider catalogue: which upstreams exist, the models they serve, their prices and limits.

Read from one TOML file (``BROKER_PROVIDERS_FILE``). API keys are named by environment variable and read at
call time; they are never stored in the database nor shown by any endpoint.
"""

import os
import tomllib
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field, model_validator

from broker.errors import InvalidRequest

DEFAULT_MAX_CONCURRENCY = 64  #: upstream calls in flight per provider, across all workers
DEFAULT_EMBEDDING_BATCH_SIZE = 256  #: embedding inputs packed into one upstream call
DEFAULT_TIMEOUT_SECONDS = 60.0  #: per upstream call
DEMO_PROVIDER = "simulator"  #: the provider `broker serve` runs on loopback when no file is configured
DEMO_MODELS: dict[str, tuple[float, float]] = {
    "gpt-4o-mini": (0.15, 0.60),
    "gpt-4o": (2.50, 10.00),
    "gpt-4.1-mini": (0.40, 1.60),
    "text-embedding-3-small": (0.02, 0.0),
    "text-embedding-3-large": (0.13, 0.0),
    "omni-moderation-latest": (0.0, 0.0),
}


class ModelSpec(BaseModel):
    """A model a provider serves: its price (USD per 1M tokens) and, optionally, limits of its own."""

    input: float = 0.0
    output: float = 0.0
    cached_input: float | None = None  #: price of prompt-cache hits; None = same as input
    rpm: int | None = Field(None, ge=1)  #: requests per minute for this model, on top of the provider's
    tpm: int | None = Field(None, ge=1)  #: tokens per minute for this model, on top of the provider's


class ProviderConfig(BaseModel):
    name: str = ""
    kind: Literal["openai"] = "openai"
    base_url: str
    api_key_env: str | None = None
    models: dict[str, ModelSpec] = Field(default_factory=dict)
    max_concurrency: int = Field(DEFAULT_MAX_CONCURRENCY, ge=1)
    rpm: int | None = Field(None, ge=1)
    tpm: int | None = Field(None, ge=1)
    embedding_batch_size: int = Field(DEFAULT_EMBEDDING_BATCH_SIZE, ge=1)
    timeout_seconds: float = Field(DEFAULT_TIMEOUT_SECONDS, gt=0)
    regions: list[str] = Field(default_factory=list)

    def api_key(self) -> str | None:
        return os.environ.get(self.api_key_env) if self.api_key_env else None

    @property
    def queue_name(self) -> str:
        return f"provider.{self.name}"


class Catalogue(BaseModel):
    providers: dict[str, ProviderConfig]

    @model_validator(mode="after")
    def _name_providers(self) -> "Catalogue":
        for name, provider in self.providers.items():
            provider.name = name
        return self

    def model_names(self) -> list[str]:
        return sorted({m for p in self.providers.values() for m in p.models})

    def provider_for(self, model: str) -> ProviderConfig:
        """The provider serving ``model``; the first one listed wins when several do."""
        for provider in self.providers.values():
            if model in provider.models:
                return provider
        known = ", ".join(self.model_names()) or "none"
        raise InvalidRequest(
            f"The model '{model}' is not served by this broker. Known models: {known}.",
            param="model", code="model_not_found",
        )

    def get(self, name: str) -> ProviderConfig:
        return self.providers[name]


def load_catalogue(path: Path) -> Catalogue:
    with path.open("rb") as fh:
        return Catalogue.model_validate(tomllib.load(fh))


def demo_catalogue(simulator_url: str) -> Catalogue:
    """The embedded default: every demo model served by the project's simulator."""
    models = {name: ModelSpec(input=i, output=o) for name, (i, o) in DEMO_MODELS.items()}
    return Catalogue(providers={DEMO_PROVIDER: ProviderConfig(base_url=simulator_url, models=models)})
