"""Applying a provider's shared limits around each upstream call, and keeping the process' view of it.

Before a call: wait for a request and its admission tokens in the provider's buckets (and the model's, when
the catalogue gives the model limits of its own). After: correct the tokens by the real ``usage``, learn from
``x-ratelimit-limit-*`` headers, and on a 429 cut the limit in force (see providers/limits.py).
"""

import time
from collections import deque
from dataclasses import dataclass, field

from broker.catalogue import ProviderConfig
from providers.limits import Limit, Limiter, wait_for_capacity

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

    @property
    def active(self) -> bool:
        """Whether any limit applies (otherwise calls skip the token estimate)."""
        return bool(self._limit.rpm or self._limit.tpm or any(m.rpm or m.tpm for m in self.provider.models.values()))

    def _keys(self, model: str | None) -> list[tuple[str, Limit]]:
        keys = [(self.provider.name, self._limit)] if self._limit.rpm or self._limit.tpm else []
        spec = self.provider.models.get(model or "")
        if spec is not None and (spec.rpm or spec.tpm):
            keys.append((f"{self.provider.name}:{model}", Limit(spec.rpm, spec.tpm)))
        return keys

    async def before(self, model: str | None, tokens: int) -> None:
        for key, limit in self._keys(model):
            await wait_for_capacity(self.limiter, key, limit, tokens)
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
                    header_limits: tuple[int | None, int | None], rate_limited: bool) -> None:
        self.stats.in_flight -= 1
        self.stats.record(latency, rate_limited)
        for key, limit in self._keys(model):
            if rate_limited:
                await self.limiter.on_rate_limited(key, limit)
            if actual is not None and actual != estimated:
                await self.limiter.settle(key, limit, estimated, actual)
            if key == self.provider.name and any(header_limits):
                await self.limiter.on_headers(key, limit, *header_limits)

    async def limit_in_force(self) -> tuple[float | None, float | None]:
        if not (self._limit.rpm or self._limit.tpm):
            return None, None
        state = await self.limiter.state(self.provider.name, self._limit)
        return state.rpm, state.tpm
