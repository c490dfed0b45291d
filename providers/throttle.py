"""Applying a provider's shared limits around each upstream call, and keeping the process' view of it.

Before a call: wait for a request and its admission tokens in the buckets of the caller's project on the model
(when an admin set a project limit), then in the provider's (and the model's, when the catalogue gives the model
limits of its own): a project waiting on its own limit takes nothing from the provider's meanwhile. After: correct
the tokens by the real ``usage``, learn from ``x-ratelimit-limit-*`` headers, and on a 429 lower the limit in force
and hold sends back for its ``Retry-After`` (see providers/limits.py). The provider's own key is always used,
configured or not: the limiter counts what the provider accepts, so a provider with no limit configured learns one
from its first 429s.
"""

import logging
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field

from broker.catalogue import ProviderConfig
from broker.tables import ProviderStateRow
from providers.limits import Limit, Limiter, wait_for_capacity

log = logging.getLogger(__name__)
LATENCY_SAMPLES = 512  #: recent call latencies kept per provider for p50/p95
RATE_WINDOW_SECONDS = 60.0  #: calls and 429s are counted over this window


@dataclass
class CallStats:
    """This process' recent calls to one provider."""

    latencies: deque[float] = field(default_factory=lambda: deque(maxlen=LATENCY_SAMPLES))
    calls: deque[tuple[float, bool]] = field(default_factory=deque)  #: (time, was a 429)
    in_flight: int = 0

    def record(self, latency: float, rate_limited: bool) -> None:
        now = time.monotonic()
        self.latencies.append(latency)
        self.calls.append((now, rate_limited))
        while self.calls and self.calls[0][0] < now - RATE_WINDOW_SECONDS:
            self.calls.popleft()

    def percentile(self, q: float) -> float | None:
        if not self.latencies:
            return None
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]

    def rate_limited_share(self) -> float:
        return sum(limited for _, limited in self.calls) / len(self.calls) if self.calls else 0.0


class ProviderThrottle:
    def __init__(self, provider: ProviderConfig, limiter: Limiter) -> None:
        self.provider = provider
        self.limiter = limiter
        self.stats = CallStats()
        self._limit = Limit(provider.rpm, provider.tpm)
        self._rate_limited = 0  #: 429s this process has seen: a caller that waited through one books its slot again

    @property
    def active(self) -> bool:
        """Whether any limit applies (otherwise calls skip the token estimate)."""
        return bool(self._limit.rpm or self._limit.tpm or any(m.rpm or m.tpm for m in self.provider.models.values()))

    def _keys(self, model: str | None) -> list[tuple[str, Limit]]:
        keys = [(self.provider.name, self._limit)]
        spec = self.provider.models.get(model or "")
        if spec is not None and (spec.rpm or spec.tpm):
            keys.append((f"{self.provider.name}:{model}", Limit(spec.rpm, spec.tpm)))
        return keys

    async def before(self, model: str | None, tokens: int, own: Sequence[tuple[str, Limit]] = ()) -> None:
        """Wait for a request and its tokens under every limit that applies, ``own`` (the project limits: limiter
        key, limit) first. A caller whose wait was booked before a 429 lowered the limit books again under the
        lowered one, instead of going out at the old pace."""
        for key, limit in [*own, *self._keys(model)]:
            while True:
                seen = self._rate_limited
                await wait_for_capacity(self.limiter, key, limit, tokens)
                if self._rate_limited == seen:
                    break
        self.stats.in_flight += 1

    async def reserve_first(self, model: str | None, tokens: int) -> float:
        """Take a request and ``tokens`` ahead of batch lines (an interactive call); returns the seconds to wait
        before calling. Follow with :meth:`after`, or :meth:`unreserve` if the call does not go."""
        waits = [await self.limiter.acquire_first(key, limit, tokens) for key, limit in self._keys(model)]
        self.stats.in_flight += 1
        return max(waits, default=0.0)

    async def unreserve(self, model: str | None, tokens: int) -> None:
        """The reserved call did not go: its tokens go back (its request stays spent)."""
        self.stats.in_flight -= 1
        for key, limit in self._keys(model):
            await self.limiter.settle(key, limit, tokens, 0)

    async def after(self, model: str | None, latency: float, estimated: int, actual: int | None,
                    header_limits: tuple[int | None, int | None], rate_limited: bool,
                    own: Sequence[tuple[str, Limit]] = (), retry_after: float | None = None) -> None:
        self.stats.in_flight -= 1
        self.stats.record(latency, rate_limited)
        self._rate_limited += rate_limited
        try:
            if actual is not None and actual != estimated:  # a project's limit is ours: an upstream 429 leaves it be
                for key, limit in own:
                    await self.limiter.settle(key, limit, estimated, actual)
            for key, limit in self._keys(model):
                if rate_limited:
                    await self.limiter.on_rate_limited(key, limit, retry_after)
                if actual is not None:  # answered: counted as accepted, its tokens corrected
                    await self.limiter.settle(key, limit, estimated, actual)
                if key == self.provider.name and any(header_limits):
                    await self.limiter.on_headers(key, limit, *header_limits)
        except Exception:  # the call is made: losing its answer to the limit store's trouble would run it again
            log.warning("provider %s: the shared limits missed a call's outcome", self.provider.name, exc_info=True)

    async def limit_in_force(self) -> tuple[float | None, float | None]:
        state = await self.limiter.state(self.provider.name, self._limit)
        return state.rpm, state.tpm

    async def report(self, reporter_id: str, circuit_open: bool) -> ProviderStateRow:
        """This process' view of the provider (``circuit_open``: its breaker's), as ``GET /v1/providers`` gathers
        it from every process."""
        rpm, tpm = await self.limit_in_force()
        stats = self.stats
        p50, p95 = stats.percentile(0.5), stats.percentile(0.95)
        return ProviderStateRow(
            provider=self.provider.name, worker_id=reporter_id, updated_at=time.time(), rpm_in_force=rpm,
            tpm_in_force=tpm, in_flight=stats.in_flight, calls=len(stats.calls),
            rate_limited=sum(limited for _, limited in stats.calls),
            p50_ms=p50 * 1000 if p50 is not None else None, p95_ms=p95 * 1000 if p95 is not None else None,
            circuit_open=circuit_open,
        )
