"""Settings of the provider simulator.

One mutable :class:`SimulatorConfig` is shared by the running app: changing a field (directly, or through
``POST /_sim/config``) takes effect on the next request.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

ERROR_KINDS: tuple[str, ...] = ("500", "503", "timeout", "drop")
"""Every kind of injected failure the simulator knows."""

DEFAULT_MODELS: tuple[str, ...] = (
    "gpt-4o-mini",
    "gpt-4o",
    "text-embedding-3-small",
    "text-embedding-3-large",
    "omni-moderation-latest",
)
"""Models listed by ``GET /v1/models`` before any request; every other name is accepted too."""

ENV_PREFIX = "BROKER_SIM_"  #: prefix of the environment variables read by :meth:`SimulatorConfig.from_env`


@dataclass
class SimulatorConfig:
    """Behaviour of the simulated upstream provider (latency, limits, failures, shapes)."""

    latency_median_ms: float = 0.0
    """Median of the lognormal per-request latency in ms; 0 answers at once without sleeping."""
    latency_sigma: float = 0.5
    """Shape (sigma of the underlying normal) of the lognormal latency."""
    latency_by_input: bool = False
    """Draw a request's latency from its (first) input and ``seed``, not from the running sequence: the same request
    always takes as long, so two clients sending the same lines meet the same latencies (the same slow tail)."""
    rpm: int | None = None
    """Requests-per-minute limit, a token bucket refilling continuously; None = unlimited."""
    tpm: int | None = None
    """Tokens-per-minute limit (prompt + reserved output tokens); None = unlimited."""
    ratelimit_headers: bool = True
    """Send ``x-ratelimit-*`` headers (limit, remaining, reset); False hides the limits (429s keep ``Retry-After``)."""
    error_rate: float = 0.0
    """Fraction (0..1) of admitted requests that fail with an injected error."""
    error_kinds: tuple[str, ...] = ("500", "timeout", "drop")
    """Kinds drawn uniformly for an injected error: "500", "503", "timeout" (hang), "drop" (cut off)."""
    hang_seconds: float = 30.0
    """How long a "timeout" error hangs before answering normally (it stops early if the client leaves)."""
    slow_seconds: float = 3.0
    """How long a request marked with ``SIM_SLOW_MARKER`` takes (one slow line among fast ones, in tests)."""
    stream_delay_ms: float = 0.0
    """Pause between two events of a streamed answer (one per word, as a model emits tokens); a whole answer comes
    when its stream would have ended. 0 answers at once."""
    embedding_dim: int = 64
    """Vector size of embeddings when the request does not give ``dimensions``."""
    max_embedding_inputs: int = 2048
    """Most inputs accepted in one embeddings request (OpenAI: 2048); more answer 400."""
    seed: int = 0
    """Seed of the random draws for latency and error injection (outputs are deterministic regardless)."""
    models: tuple[str, ...] = field(default=DEFAULT_MODELS)
    """Models listed by ``GET /v1/models`` besides those seen in requests."""
    batch_turnaround_seconds: float = 2.0
    """Native batch API: seconds from a batch's creation until all its lines have run (spread evenly)."""
    batch_expire_after_seconds: float | None = None
    """Native batch API: seconds after which an unfinished batch ends ``expired``; None = never."""
    batch_discount: float = 0.5
    """Native batch API: the price discount a real provider would give (informational; pricing is the broker's)."""

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Raise ValueError if a field is out of range."""
        if self.latency_median_ms < 0 or self.latency_sigma < 0:
            raise ValueError("latency_median_ms and latency_sigma must be >= 0")
        for name in ("rpm", "tpm"):
            value = getattr(self, name)
            if value is not None and value <= 0:
                raise ValueError(f"{name} must be a positive integer or None")
        if not 0.0 <= self.error_rate <= 1.0:
            raise ValueError("error_rate must be between 0 and 1")
        unknown = [kind for kind in self.error_kinds if kind not in ERROR_KINDS]
        if unknown or not self.error_kinds:
            raise ValueError(f"error_kinds must be a non-empty subset of {ERROR_KINDS}: {self.error_kinds}")
        if self.hang_seconds < 0 or self.slow_seconds < 0 or self.stream_delay_ms < 0:
            raise ValueError("hang_seconds, slow_seconds and stream_delay_ms must be >= 0")
        if self.embedding_dim < 1 or self.max_embedding_inputs < 1:
            raise ValueError("embedding_dim and max_embedding_inputs must be >= 1")
        if self.batch_turnaround_seconds < 0:
            raise ValueError("batch_turnaround_seconds must be >= 0")
        if self.batch_expire_after_seconds is not None and self.batch_expire_after_seconds <= 0:
            raise ValueError("batch_expire_after_seconds must be > 0 or None")
        if not 0.0 <= self.batch_discount <= 1.0:
            raise ValueError("batch_discount must be between 0 and 1")

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any]) -> SimulatorConfig:
        """Build a config from a mapping of field names (values may be strings, as from env or a CLI)."""
        return cls(**_coerce_all(values))

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, prefix: str = ENV_PREFIX) -> SimulatorConfig:
        """Build a config from ``BROKER_SIM_<FIELD>`` variables, e.g. ``BROKER_SIM_RPM=600``."""
        env = os.environ if environ is None else environ
        names = {f.name for f in dataclasses.fields(cls)}
        picked = {
            key[len(prefix) :].lower(): value
            for key, value in env.items()
            if key.startswith(prefix) and key[len(prefix) :].lower() in names
        }
        return cls.from_mapping(picked)

    def apply(self, patch: Mapping[str, Any]) -> None:
        """Change fields in place (all or nothing); raise ValueError on unknown fields or bad values."""
        merged = self.to_dict()
        merged.update(_coerce_all(patch))
        candidate = SimulatorConfig(**merged)
        for f in dataclasses.fields(self):
            setattr(self, f.name, getattr(candidate, f.name))

    def to_dict(self) -> dict[str, Any]:
        """The fields as plain JSON-ready values."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}


_FLOAT_FIELDS = frozenset({"latency_median_ms", "latency_sigma", "error_rate", "hang_seconds", "slow_seconds",
                           "stream_delay_ms", "batch_turnaround_seconds", "batch_discount"})
_OPTIONAL_FLOAT_FIELDS = frozenset({"batch_expire_after_seconds"})
_INT_FIELDS = frozenset({"embedding_dim", "max_embedding_inputs", "seed"})
_OPTIONAL_INT_FIELDS = frozenset({"rpm", "tpm"})
_TUPLE_FIELDS = frozenset({"error_kinds", "models"})
_BOOL_FIELDS = frozenset({"ratelimit_headers", "latency_by_input"})


def _coerce_all(values: Mapping[str, Any]) -> dict[str, Any]:
    return {name: _coerce(name, value) for name, value in values.items()}


def _coerce(name: str, value: Any) -> Any:
    """Convert one raw value (JSON or string) to the field's type."""
    if name in _FLOAT_FIELDS:
        return float(value)
    if name in _INT_FIELDS:
        return _to_int(name, value)
    if name in _OPTIONAL_INT_FIELDS:
        if value is None or (isinstance(value, str) and value.strip().lower() in ("", "none", "null", "0")):
            return None
        return _to_int(name, value)
    if name in _OPTIONAL_FLOAT_FIELDS:
        if value is None or (isinstance(value, str) and value.strip().lower() in ("", "none", "null")):
            return None
        return float(value)
    if name in _BOOL_FIELDS:
        return value if isinstance(value, bool) else str(value).strip().lower() in ("1", "true", "yes", "on")
    if name in _TUPLE_FIELDS:
        items = value.split(",") if isinstance(value, str) else list(value)
        return tuple(str(item).strip() for item in items if str(item).strip())
    raise ValueError(f"unknown simulator setting {name!r}")


def _to_int(name: str, value: Any) -> int:
    if isinstance(value, bool):
        raise ValueError(f"{name} must be an integer")
    number = float(value)
    if number != int(number):
        raise ValueError(f"{name} must be an integer")
    return int(number)
