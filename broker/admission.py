"""Admission: when will a new batch finish, given the backlog ahead of it and the provider's throughput?

The estimate is conservative: lines of equal or higher priority already running on the same provider go
first, at the rate the provider's limits in force allow (rpm, and concurrency over the observed latency). A batch
that cannot meet its window is accepted and flagged, or refused with 429 under strict admission.
"""

import math
import time
from collections.abc import Iterable
from dataclasses import dataclass

import orjson
from sqlalchemy import text
from sqlmodel import Session

from broker.catalogue import Catalogue, ProviderConfig
from broker.errors import InvalidRequest
from broker.provider_state import current

DEFAULT_LATENCY_SECONDS = 1.0  #: upstream latency assumed before any call has been observed


@dataclass(frozen=True, slots=True)
class Estimate:
    lines: int
    provider: str
    lines_per_second: float
    lines_ahead: int
    completion_at: int

    def feasible(self, expires_at: int) -> bool:
        return self.completion_at <= expires_at

    def earliest_window(self, start: int) -> str:
        minutes = max(1, math.ceil((self.completion_at - start) / 60))
        return f"{minutes}m" if minutes < 120 else f"{math.ceil(minutes / 60)}h"


def _count_lines(chunks: Iterable[bytes]) -> tuple[int, bytes]:
    """Lines in the file whose bytes are ``chunks``, and its first line."""
    count, head, last = 0, b"", b""
    for chunk in chunks:
        if b"\n" not in head:
            head += chunk
        count += chunk.count(b"\n")
        last = chunk
    if last and not last.endswith(b"\n"):
        count += 1
    return count, head.split(b"\n", 1)[0]


def lines_per_second(session: Session, provider: ProviderConfig, embeddings: bool) -> float:
    states = [s for s in current(session) if s.provider == provider.name]
    rpm = min((s.rpm_in_force for s in states if s.rpm_in_force), default=provider.rpm)
    latency = max((s.p50_ms for s in states if s.p50_ms), default=DEFAULT_LATENCY_SECONDS * 1000) / 1000
    calls = provider.max_concurrency / max(latency, 0.001)
    if rpm:
        calls = min(calls, rpm / 60)
    return calls * (provider.embedding_batch_size if embeddings else 1)


def estimate(session: Session, catalogue: Catalogue, chunks: Iterable[bytes], endpoint: str, priority: int,
             start: int) -> Estimate | None:
    """None when the file's first line names no known model (validation will say so)."""
    lines, first = _count_lines(chunks)
    try:
        model = orjson.loads(first).get("body", {}).get("model")
    except (orjson.JSONDecodeError, AttributeError):
        return None
    if not isinstance(model, str):  # a list or object (validation says so)
        return None
    try:
        provider = catalogue.provider_for(model)
    except InvalidRequest:
        return None
    ahead = session.connection().execute(
        text("SELECT coalesce(sum(total - completed - failed), 0) FROM batch WHERE status = 'in_progress' "
             "AND provider = :p AND priority <= :prio"),
        {"p": provider.name, "prio": priority},
    ).scalar_one()
    rate = lines_per_second(session, provider, endpoint == "/v1/embeddings")
    completion = max(start, int(time.time())) + math.ceil((int(ahead) + lines) / rate)
    return Estimate(lines, provider.name, rate, int(ahead), completion)
