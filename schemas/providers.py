"""``GET /v1/providers`` (extension): each provider's limits and how it is doing right now."""

from typing import Literal

from pydantic import BaseModel


class ProviderLimits(BaseModel):
    max_concurrency: int
    rpm: float | None = None
    tpm: float | None = None


class LatencyMs(BaseModel):
    p50: float | None = None
    p95: float | None = None


class Traffic(BaseModel):
    """One kind of call on a provider, across all processes."""

    in_flight: int = 0
    calls_last_minute: int = 0


class Provider(BaseModel):
    id: str
    object: Literal["provider"] = "provider"
    kind: str
    models: list[str]
    regions: list[str]
    configured: ProviderLimits  #: from the catalogue
    in_force: ProviderLimits  #: what the broker applies now, adapted to the provider's answers
    in_flight: int  #: calls in flight right now, batch lines leased out and interactive calls
    calls_last_minute: int  #: batch and interactive
    rate_limited_last_minute: int  #: of those, answered 429
    latency_ms: LatencyMs
    workers: int  #: worker processes that reported in the last 30 s
    interactive: Traffic = Traffic()  #: gateway calls (/v1/chat/completions, ...)
    batch: Traffic = Traffic()  #: batch lines in real time
    circuit_open: bool = False  #: a process' circuit breaker skips this provider for now (after failures)
    native_batches_in_flight: int = 0  #: submissions to the provider's native batch API not yet collected


class ProviderList(BaseModel):
    object: Literal["list"] = "list"
    data: list[Provider]


class ProviderMinute(BaseModel):
    """One minute of a provider's traffic, every process' reports added up."""

    object: Literal["provider.minute"] = "provider.minute"
    minute: int  #: unix time of the minute's start
    in_flight: int
    calls: int
    rate_limited: int  #: of those, answered 429
    p50_ms: float | None = None
    p95_ms: float | None = None


class ProviderHistory(BaseModel):
    object: Literal["list"] = "list"
    provider: str
    data: list[ProviderMinute]  #: oldest first; a minute no process reported in is absent
