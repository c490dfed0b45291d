"""A per-process circuit breaker per provider: after a run of failures, lines that have another deployment
skip the provider for a cooldown instead of each paying for a failing call."""

import time

CIRCUIT_FAILURES = 5  #: consecutive failed calls (5xx, timeouts, dropped connections) that mark a provider down
CIRCUIT_COOLDOWN_SECONDS = 15.0  #: a provider marked down gets a trial call again after this long


class CircuitBreaker:
    def __init__(self) -> None:
        self._failures = 0  #: consecutive failed calls
        self._down_since = 0.0  #: when the latest run of failures reached CIRCUIT_FAILURES

    def record(self, failed: bool) -> None:
        """Count a call that failed for the provider's reasons (not a 4xx of ours), or reset on one that did not."""
        if not failed:
            self._failures = 0
            return
        self._failures += 1
        if self._failures >= CIRCUIT_FAILURES:
            self._down_since = time.monotonic()

    @property
    def down(self) -> bool:
        """Whether lines that have another deployment should skip this provider for now (after the cooldown calls
        go through again; the first one that fails marks it down anew)."""
        return self._failures >= CIRCUIT_FAILURES and time.monotonic() - self._down_since < CIRCUIT_COOLDOWN_SECONDS
