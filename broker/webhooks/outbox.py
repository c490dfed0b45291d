"""The outbox in SQL: claiming due deliveries under a lease, and recording each attempt's outcome.

A delivery is claimed by pushing its ``next_attempt_at`` past the claim lease in a conditional UPDATE, so two
deliverers (two planner processes) never send the same attempt at once; a deliverer that dies leaves a lease
that expires, and the delivery is sent again (at least once, same ``webhook-id``). Outcomes are written only
while the claimant still holds its lease (``next_attempt_at`` unchanged).

Policy: 2xx delivered; 410 Gone fails it and disables a registered endpoint; a refused target (SSRF guard)
fails it; anything else (3xx, 4xx, 5xx, network errors) is retried after the schedule's next step, with jitter,
or after ``Retry-After`` on 429/503 when that is longer. When the schedule is spent the delivery fails; an
endpoint that has failed continuously for ``DISABLE_AFTER_SECONDS`` is disabled.
"""

import random
import time
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import Connection, Engine, text

from broker.webhooks.signing import default_secret

CLAIM_LEASE_SECONDS = 60.0  #: a claimed delivery is retried by another deliverer only after this (> the timeout)
RETRY_JITTER = 0.1  #: every retry delay is scaled by a random factor in [1 - this, 1 + this]
MAX_RETRY_AFTER_SECONDS = 86_400.0  #: a receiver's Retry-After is honoured up to one day
DISABLE_AFTER_SECONDS = 5 * 86_400  #: an endpoint failing continuously this long is disabled
MAX_ERROR_CHARS = 500  #: last_error is cut to this length
HONOURS_RETRY_AFTER = (429, 503)  #: statuses whose Retry-After header sets the next attempt's earliest time


@dataclass(frozen=True)
class Claimed:
    """One delivery this deliverer holds until ``lease``: everything needed to send it."""

    id: str
    project_id: str
    endpoint_id: str | None
    url: str
    event_id: str
    payload: str
    attempts: int
    secret: str
    lease: float


@dataclass(frozen=True)
class Attempt:
    """What one attempt came to: an HTTP status, a transport error, or a refusal by the SSRF guard."""

    status_code: int | None = None
    error: str | None = None
    refused: str | None = None
    retry_after: float | None = None

    @property
    def ok(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


def retry_delay(attempts: int, schedule: Sequence[float], retry_after: float | None = None,
                rng: random.Random | None = None) -> float | None:
    """Seconds to wait after the ``attempts``-th failed attempt, or None when the schedule is spent."""
    if attempts > len(schedule):
        return None
    delay = schedule[attempts - 1] * (rng or random).uniform(1 - RETRY_JITTER, 1 + RETRY_JITTER)
    if retry_after is not None and retry_after > delay:
        delay = min(retry_after, MAX_RETRY_AFTER_SECONDS)
    return delay


def claim_due(engine: Engine, limit: int) -> list[Claimed]:
    """Up to ``limit`` due deliveries, each claimed under a fresh lease (others skip what they lost)."""
    t = time.time()
    lease = t + CLAIM_LEASE_SECONDS
    with engine.begin() as conn:
        rows = conn.execute(
            text("SELECT d.id, d.project_id, d.endpoint_id, d.url, d.event_id, d.payload, d.attempts, e.secret, "
                 "e.enabled FROM webhook_delivery d LEFT JOIN webhook_endpoint e ON e.id = d.endpoint_id "
                 "WHERE d.status = 'pending' AND d.next_attempt_at <= :now ORDER BY d.next_attempt_at LIMIT :n"),
            {"now": t, "n": limit},
        ).all()
        claimed: list[Claimed] = []
        for d_id, project_id, endpoint_id, url, event_id, payload, attempts, secret, enabled in rows:
            if endpoint_id is not None and not enabled:
                conn.execute(text("UPDATE webhook_delivery SET status = 'failed', last_error = :err WHERE id = :id"),
                             {"err": "endpoint disabled", "id": d_id})
                continue
            won = conn.execute(
                text("UPDATE webhook_delivery SET next_attempt_at = :lease WHERE id = :id AND status = 'pending' "
                     "AND next_attempt_at <= :now"),
                {"lease": lease, "id": d_id, "now": t},
            ).rowcount == 1
            if won:
                key = secret if endpoint_id is not None else default_secret(conn, project_id)
                claimed.append(Claimed(d_id, project_id, endpoint_id, url, event_id, payload, attempts, key, lease))
    return claimed


def record(engine: Engine, claim: Claimed, attempt: Attempt, schedule: Sequence[float]) -> str | None:
    """Store the attempt's outcome; returns the delivery's new status, or None if the lease was lost."""
    t = time.time()
    attempts = claim.attempts + 1
    with engine.begin() as conn:
        if attempt.ok:
            status, error, next_at = "delivered", None, None
        elif attempt.refused is not None:
            status, error, next_at = "failed", f"refused: {attempt.refused}", None
        elif attempt.status_code == 410:
            status, error, next_at = "failed", "410 Gone: the receiver asked for no more deliveries", None
        else:
            retry_after = attempt.retry_after if attempt.status_code in HONOURS_RETRY_AFTER else None
            delay = retry_delay(attempts, schedule, retry_after)
            status, next_at = ("failed", None) if delay is None else ("pending", t + delay)
            error = attempt.error or f"receiver answered HTTP {attempt.status_code}"
        if not _finish(conn, claim, status, attempts=attempts, error=error, status_code=attempt.status_code,
                       next_at=next_at, at=t):
            return None
        if claim.endpoint_id is not None:
            _track_endpoint(conn, claim, attempt, int(t))
    return status


def release(engine: Engine, claims: Sequence[Claimed]) -> None:
    """Give back leases of deliveries whose attempt was abandoned (shutdown): due again at once."""
    with engine.begin() as conn:
        for claim in claims:
            conn.execute(
                text("UPDATE webhook_delivery SET next_attempt_at = :now WHERE id = :id AND status = 'pending' "
                     "AND next_attempt_at = :lease"),
                {"now": time.time(), "id": claim.id, "lease": claim.lease},
            )


def disable_endpoint(conn: Connection, endpoint_id: str, reason: str) -> None:
    """Stop an endpoint and fail its pending deliveries (one in flight records nothing: its row is no longer
    pending)."""
    conn.execute(text("UPDATE webhook_endpoint SET enabled = :no, disabled_reason = :r WHERE id = :e"),
                 {"no": False, "r": reason, "e": endpoint_id})
    conn.execute(
        text("UPDATE webhook_delivery SET status = 'failed', last_error = :err WHERE endpoint_id = :e "
             "AND status = 'pending'"),
        {"err": f"endpoint disabled: {reason}", "e": endpoint_id},
    )


def _track_endpoint(conn: Connection, claim: Claimed, attempt: Attempt, t: int) -> None:
    if attempt.ok:
        conn.execute(text("UPDATE webhook_endpoint SET first_failure_at = NULL WHERE id = :e"),
                     {"e": claim.endpoint_id})
        return
    assert claim.endpoint_id is not None
    if attempt.status_code == 410:
        disable_endpoint(conn, claim.endpoint_id, "the receiver answered 410 Gone")
        return
    conn.execute(text("UPDATE webhook_endpoint SET first_failure_at = :t WHERE id = :e AND first_failure_at IS NULL"),
                 {"t": t, "e": claim.endpoint_id})
    since = conn.execute(text("SELECT first_failure_at FROM webhook_endpoint WHERE id = :e"),
                         {"e": claim.endpoint_id}).scalar()
    if since is not None and t - since >= DISABLE_AFTER_SECONDS:
        disable_endpoint(conn, claim.endpoint_id, f"failing continuously for {DISABLE_AFTER_SECONDS // 86_400} days")


def _finish(conn: Connection, claim: Claimed, status: str, *, attempts: int, error: str | None,
            status_code: int | None, next_at: float | None, at: float) -> bool:
    """Write one attempt's outcome if the claim's lease is still ours. Returns whether the row changed."""
    result = conn.execute(
        text("UPDATE webhook_delivery SET status = :s, attempts = :attempts, last_status_code = :code, "
             "last_error = :err, next_attempt_at = :next, delivered_at = :done "
             "WHERE id = :id AND status = 'pending' AND next_attempt_at = :lease"),
        {"s": status, "attempts": attempts, "code": status_code, "err": error[:MAX_ERROR_CHARS] if error else None,
         "next": claim.lease if next_at is None else next_at, "done": int(at) if status == "delivered" else None,
         "id": claim.id, "lease": claim.lease},
    )
    return bool(result.rowcount == 1)
