"""Provider catalogue: which upstreams exist, the models they serve, their prices and limits.

Read from one TOML file (``BROKER_PROVIDERS_FILE``). API keys are named by environment variable and read at
call time; they are never stored in the database nor shown by any endpoint.
"""

import datetime as dt
import os
import tomllib
from pathlib import Path

from pydantic import BaseModel, Field, field_validator, model_validator

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


DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
KINDS_ENDPOINTS: dict[str, frozenset[str]] = {
    "openai": frozenset({"/v1/chat/completions", "/v1/completions", "/v1/embeddings", "/v1/responses",
                         "/v1/moderations"}),
    "anthropic": frozenset({"/v1/chat/completions"}),  # translated to Anthropic's Messages API
}  #: batch endpoints each provider kind can serve
SEARCH_DAYS = 8  #: how far ahead the next off-peak window is looked for


class OffPeakWindow(BaseModel):
    """Hours (UTC) in which a provider charges less: ``multiplier`` x the normal price.

    ``start`` and ``end`` are ``HH:MM``; an ``end`` before ``start`` runs past midnight (the day is the start's).
    """

    days: list[str] = Field(default_factory=lambda: list(DAYS))
    start: str
    end: str
    multiplier: float = Field(gt=0.0, le=1.0)

    @field_validator("days")
    @classmethod
    def _known_days(cls, days: list[str]) -> list[str]:
        days = [d.lower()[:3] for d in days]
        if unknown := [d for d in days if d not in DAYS]:
            raise ValueError(f"unknown days {unknown}: use {', '.join(DAYS)}")
        return days

    @field_validator("start", "end")
    @classmethod
    def _clock(cls, value: str) -> str:
        dt.time.fromisoformat(value)
        return value

    def _spans(self, around: float) -> list[tuple[float, float]]:
        """The window's occurrences from the day before ``around`` to SEARCH_DAYS after, as unix spans."""
        day0 = dt.datetime.fromtimestamp(around, dt.UTC).replace(hour=0, minute=0, second=0, microsecond=0)
        start, end = dt.time.fromisoformat(self.start), dt.time.fromisoformat(self.end)
        length = (dt.datetime.combine(day0, end) - dt.datetime.combine(day0, start)).total_seconds() % 86400
        spans = []
        for n in range(-1, SEARCH_DAYS):
            day = day0 + dt.timedelta(days=n)
            if DAYS[day.weekday()] in self.days:
                begin = dt.datetime.combine(day.date(), start, dt.UTC).timestamp()
                spans.append((begin, begin + (length or 86400)))
        return spans

    def span_at(self, t: float) -> tuple[float, float] | None:
        """The occurrence holding ``t``, if any."""
        return next(((a, b) for a, b in self._spans(t) if a <= t < b), None)

    def next_span(self, t: float) -> tuple[float, float] | None:
        """The occurrence holding ``t`` or the next one to begin."""
        return next(((a, b) for a, b in self._spans(t) if b > t), None)


class NativeBatchConfig(BaseModel):
    """A provider's own batch API (OpenAI's Files + Batches, or Anthropic's Message Batches)."""

    discount: float = Field(0.5, ge=0.0, lt=1.0)  #: off the real-time price (OpenAI and Anthropic: 50 %)
    #: how long the broker plans on the provider taking (OpenAI and Anthropic promise 24 h; most batches end within
    #: hours). A remote batch still running when only the window's real-time reserve is left is cancelled and its
    #: unfinished lines run in real time, so a 24 h window still uses the batch API at this default.
    turnaround_seconds: float = Field(43_200.0, gt=0)
    max_lines: int = Field(50_000, ge=1)  #: requests per submitted batch
    poll_seconds: float = Field(30.0, gt=0)  #: how often a running batch is polled


class ModelSpec(BaseModel):
    """A model a provider serves: its price (USD per 1M tokens) and, optionally, limits of its own."""

    input: float = 0.0
    output: float = 0.0
    cached_input: float | None = None  #: price of prompt-cache hits; None = same as input
    rpm: int | None = Field(None, ge=1)  #: requests per minute for this model, on top of the provider's
    tpm: int | None = Field(None, ge=1)  #: tokens per minute for this model, on top of the provider's
    #: the name this provider knows the model by, when it differs from the public name batches use
    upstream_model: str | None = None
    batch_discount: float | None = Field(None, ge=0.0, lt=1.0)  #: overrides the provider's native batch discount
    off_peak: list[OffPeakWindow] | None = None  #: overrides the provider's off-peak windows


class ProviderConfig(BaseModel):
    name: str = ""
    kind: str = "openai"  #: one of KINDS_ENDPOINTS; providers/registry.py has its adapters
    base_url: str
    api_key_env: str | None = None
    models: dict[str, ModelSpec] = Field(default_factory=dict)
    max_concurrency: int = Field(DEFAULT_MAX_CONCURRENCY, ge=1)
    rpm: int | None = Field(None, ge=1)
    tpm: int | None = Field(None, ge=1)
    embedding_batch_size: int = Field(DEFAULT_EMBEDDING_BATCH_SIZE, ge=1)
    timeout_seconds: float = Field(DEFAULT_TIMEOUT_SECONDS, gt=0)
    regions: list[str] = Field(default_factory=list)  #: data-residency tags, e.g. ["eu"]
    native_batch: NativeBatchConfig | None = None  #: None: the provider has no batch API (or we do not use it)
    off_peak: list[OffPeakWindow] = Field(default_factory=list)

    @field_validator("kind")
    @classmethod
    def _known_kind(cls, kind: str) -> str:
        if kind not in KINDS_ENDPOINTS:
            raise ValueError(f"unknown provider kind {kind!r}: use one of {', '.join(KINDS_ENDPOINTS)}")
        return kind

    def serves(self, model: str, endpoint: str | None = None) -> bool:
        return model in self.models and (endpoint is None or endpoint in KINDS_ENDPOINTS[self.kind])

    def upstream_name(self, model: str) -> str:
        spec = self.models.get(model)
        return spec.upstream_model if spec is not None and spec.upstream_model else model

    def batch_discount(self, model: str) -> float | None:
        """The native batch API's discount for ``model``; None when the provider has no batch API."""
        if self.native_batch is None:
            return None
        spec = self.models.get(model)
        return spec.batch_discount if spec is not None and spec.batch_discount is not None \
            else self.native_batch.discount

    def off_peak_windows(self, model: str) -> list[OffPeakWindow]:
        spec = self.models.get(model)
        return spec.off_peak if spec is not None and spec.off_peak is not None else self.off_peak

    def price_multiplier(self, model: str, at: float) -> float:
        """The share of the normal price charged for a real-time call at ``at`` (off-peak windows)."""
        return min((w.multiplier for w in self.off_peak_windows(model) if w.span_at(at)), default=1.0)

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

    def deployments(self, model: str, endpoint: str | None = None) -> list[ProviderConfig]:
        """Every provider serving ``model`` (at ``endpoint``), in fallback order: as listed in the file."""
        return [p for p in self.providers.values() if p.serves(model, endpoint)]

    def provider_for(self, model: str) -> ProviderConfig:
        """The provider serving ``model``; the first one listed wins when several do."""
        if deployments := self.deployments(model):
            return deployments[0]
        known = ", ".join(self.model_names()) or "none"
        raise InvalidRequest(
            f"The model '{model}' is not served by this broker. Known models: {known}.",
            param="model", code="model_not_found",
        )

    def get(self, name: str) -> ProviderConfig:
        return self.providers[name]

    def unset_key_envs(self) -> dict[str, list[str]]:
        """Each ``api_key_env`` variable that is not set, with the providers that read their key from it."""
        unset: dict[str, list[str]] = {}
        for p in self.providers.values():
            if p.api_key_env and not os.environ.get(p.api_key_env):
                unset.setdefault(p.api_key_env, []).append(p.name)
        return unset


def load_catalogue(path: Path) -> Catalogue:
    with path.open("rb") as fh:
        return Catalogue.model_validate(tomllib.load(fh))


def demo_catalogue(simulator_url: str) -> Catalogue:
    """The embedded default: every demo model served by the project's simulator."""
    models = {name: ModelSpec(input=i, output=o) for name, (i, o) in DEMO_MODELS.items()}
    return Catalogue(providers={DEMO_PROVIDER: ProviderConfig(base_url=simulator_url, models=models)})
