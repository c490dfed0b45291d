"""A per-process circuit breaker per provider: after a run of failures, lines and interactive calls that have another
deployment skip the provider for a cooldown instead of each paying for a failing call.

One process keeps one breaker per provider (:class:`Circuits`), shared by its batch lines and its interactive calls
(in the embedded default both run in one process), and reports its state with the provider state it publishes
(broker/provider_state.py), so ``GET /v1/providers`` shows a circuit open in any process."""

import time

CIRCUIT_FAILURES = 5  #: consecutive failed calls (5xx, timeouts, dropped connections) that mark a provider down
CIRCUIT_COOLDOWN_SECONDS = 15.0  #: a provider marked down gets a trial call again after this long


class CircuitBreaker:
    def __init__(self) -> None:
        self._failures = 0  #: consecutive failed calls
        self._down_since = 0.0  #: when the latest run of failures reached CIRCUIT_FAILURES

    def record(self, failed: bool) -> bool:
        """Count a call that failed for the provider's reasons (not a 4xx of ours), or reset on one that did not.
        Returns whether this call marked the provider down (a caller reports that at once)."""
        if not failed:
            self._failures = 0
            return False
        was_down = self.down
        self._failures += 1
        if self._failures >= CIRCUIT_FAILURES:
            self._down_since = time.monotonic()
        return not was_down and self.down

    @property
    def down(self) -> bool:
        """Whether lines that have another deployment should skip this provider for now (after the cooldown calls
        go through again; the first one that fails marks it down anew)."""
        return self._failures >= CIRCUIT_FAILURES and time.monotonic() - self._down_since < CIRCUIT_COOLDOWN_SECONDS


class Circuits:
    """The process' breakers by provider name, made on first use. Worker threads and the API's loop share them; a
    failure counted twice at once may be counted once, which only delays the breaker by a call."""

    def __init__(self) -> None:
        self._breakers: dict[str, CircuitBreaker] = {}

    def __call__(self, provider: str) -> CircuitBreaker:
        return self._breakers.setdefault(provider, CircuitBreaker())

    def down(self, provider: str) -> bool:
        """Whether the provider's breaker is open (a provider never called has none: closed)."""
        breaker = self._breakers.get(provider)
        return breaker is not None and breaker.down
