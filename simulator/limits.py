"""Request and token rate limits enforced the way OpenAI does.

Each limit is a token bucket whose capacity is one minute's allowance, refilling continuously at
``limit / 60`` per second. A request needs 1 request and its token cost (prompt tokens + reserved output
tokens); if either bucket lacks it the request is refused with a 429 that consumes nothing. Limits are read
from the shared :class:`SimulatorConfig` on every request, so changing them takes effect at once; a bucket
keeps what was already used when its limit changes.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any, NamedTuple

from simulator.config import SimulatorConfig
from simulator.errors import error_body

ORGANIZATION = "org-sim"  #: organization named in rate-limit messages
RATE_LIMITS_URL = "https://platform.openai.com/account/rate-limits"  #: link quoted in 429 messages


def format_duration(seconds: float) -> str:
    """OpenAI's reset-duration format: ``"120ms"``, ``"1s"``, ``"17.64s"``, ``"6m0s"``."""
    if seconds <= 0:
        return "0s"
    if seconds < 1:
        return f"{max(1, math.ceil(seconds * 1000))}ms"
    minutes, rest = divmod(seconds, 60.0)
    text = f"{rest:.3f}".rstrip("0").rstrip(".") + "s"
    return f"{int(minutes)}m{text}" if minutes >= 1 else text


class Bucket:
    """A continuously refilling token bucket with one minute's limit as capacity."""

    __slots__ = ("limit", "level", "stamp")

    def __init__(self, limit: int, now: float) -> None:
        self.limit = limit
        self.level = float(limit)
        self.stamp = now

    def refill(self, now: float, limit: int) -> None:
        """Bring the level up to ``now`` at the old rate, then adopt a changed limit (used stays used)."""
        self.level = min(float(self.limit), self.level + (now - self.stamp) * self.limit / 60.0)
        self.stamp = now
        if limit != self.limit:
            used = self.limit - self.level
            self.limit = limit
            self.level = max(0.0, limit - used)

    def wait_for(self, cost: float) -> float:
        """Seconds until ``cost`` fits (0 if it fits now)."""
        missing = cost - self.level
        return 0.0 if missing <= 0 else missing * 60.0 / self.limit

    def reset_after(self) -> float:
        """Seconds until the bucket is full again."""
        return (self.limit - self.level) * 60.0 / self.limit


class Decision(NamedTuple):
    """Outcome of a rate-limit check: headers for the response, and the 429 body if refused."""

    allowed: bool
    headers: dict[str, str]
    error: dict[str, Any] | None = None


_UNLIMITED = Decision(True, {})


class RateLimiter:
    """RPM and TPM buckets shared by all models (one organization), read from the live config."""

    def __init__(
        self,
        config: SimulatorConfig,
        *,
        clock: Callable[[], float] = time.monotonic,
        organization: str = ORGANIZATION,
    ) -> None:
        self.config = config
        self.clock = clock
        self.organization = organization
        self._requests: Bucket | None = None
        self._tokens: Bucket | None = None

    def reset(self) -> None:
        """Refill both buckets."""
        self._requests = self._tokens = None

    def _bucket(self, current: Bucket | None, limit: int | None, now: float) -> Bucket | None:
        if limit is None:
            return None
        if current is None:
            return Bucket(limit, now)
        current.refill(now, limit)
        return current

    def check(self, model: str, tokens: int) -> Decision:
        """Admit (and charge) a request costing ``tokens``, or refuse it without charging anything."""
        rpm, tpm = self.config.rpm, self.config.tpm
        if rpm is None and tpm is None:
            self._requests = self._tokens = None
            return _UNLIMITED
        now = self.clock()
        requests = self._requests = self._bucket(self._requests, rpm, now)
        token_bucket = self._tokens = self._bucket(self._tokens, tpm, now)
        if token_bucket is not None and tokens > token_bucket.limit:
            return self._too_large(model, tokens, requests, token_bucket)
        request_wait = requests.wait_for(1) if requests else 0.0
        token_wait = token_bucket.wait_for(tokens) if token_bucket else 0.0
        if request_wait > 0 or token_wait > 0:
            return self._refuse(model, tokens, requests, token_bucket, request_wait, token_wait)
        if requests is not None:
            requests.level -= 1
        if token_bucket is not None:
            token_bucket.level -= tokens
        return Decision(True, self._headers(requests, token_bucket))

    def _headers(self, requests: Bucket | None, tokens: Bucket | None) -> dict[str, str]:
        headers: dict[str, str] = {}
        if not self.config.ratelimit_headers:
            return headers
        for suffix, bucket in (("requests", requests), ("tokens", tokens)):
            if bucket is not None:
                headers[f"x-ratelimit-limit-{suffix}"] = str(bucket.limit)
                headers[f"x-ratelimit-remaining-{suffix}"] = str(max(0, math.floor(bucket.level)))
                headers[f"x-ratelimit-reset-{suffix}"] = format_duration(bucket.reset_after())
        return headers

    def _refuse(
        self,
        model: str,
        tokens: int,
        requests: Bucket | None,
        token_bucket: Bucket | None,
        request_wait: float,
        token_wait: float,
    ) -> Decision:
        wait = max(request_wait, token_wait)
        if request_wait > 0 and requests is not None:
            kind, unit, bucket, cost = "requests", "requests per min (RPM)", requests, 1
        else:
            assert token_bucket is not None
            kind, unit, bucket, cost = "tokens", "tokens per min (TPM)", token_bucket, tokens
        used = round(bucket.limit - bucket.level)
        message = (
            f"Rate limit reached for {model} in organization {self.organization} on {unit}: "
            f"Limit {bucket.limit}, Used {used}, Requested {cost}. Please try again in "
            f"{format_duration(wait)}. Visit {RATE_LIMITS_URL} to learn more."
        )
        headers = self._headers(requests, token_bucket)
        wait_ms = max(1, math.ceil(wait * 1000))
        headers["retry-after"] = str(max(1, math.ceil(wait)))
        headers["retry-after-ms"] = str(wait_ms)
        return Decision(False, headers, error_body(message, kind, None, "rate_limit_exceeded"))

    def _too_large(self, model: str, tokens: int, requests: Bucket | None, token_bucket: Bucket) -> Decision:
        """A request above the whole TPM limit can never run: 429 without a retry time, as OpenAI does."""
        message = (
            f"Request too large for {model} in organization {self.organization} on tokens per min (TPM): "
            f"Limit {token_bucket.limit}, Requested {tokens}. The input or output tokens must be reduced in "
            f"order to run successfully. Visit {RATE_LIMITS_URL} to learn more."
        )
        return Decision(False, self._headers(requests, token_bucket),
                        error_body(message, "tokens", None, "rate_limit_exceeded"))
