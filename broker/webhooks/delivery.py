"""The webhook deliverer: a thread with its own event loop that sends due outbox rows, signed, to checked targets.

Run by every planner process next to the planner loop (network calls of up to ``DELIVERY_TIMEOUT_SECONDS`` must
not hold up planner ticks). Each poll claims due deliveries under a lease (see ``outbox``), sends each one
concurrently, and records the outcome. The SSRF guard runs again before every attempt, and the request goes to
the address it checked; redirects are never followed.
"""

import asyncio
import email.utils
import logging
import threading
import time
from collections.abc import Sequence

import httpx
from sqlalchemy import Engine

from broker.settings import Settings
from broker.webhooks.outbox import Attempt, Claimed, claim_due, record, release
from broker.webhooks.signing import signed_headers
from broker.webhooks.ssrf import AllowList, UnsafeTarget, check_url_async

log = logging.getLogger(__name__)
DELIVERY_TIMEOUT_SECONDS = 15.0  #: one attempt: connect, send, and the receiver's status line
MAX_IN_FLIGHT = 32  #: deliveries one process sends at once
USER_AGENT = "inference-broker-webhooks/0.1"  #: receivers see who calls


def parse_retry_after(value: str | None, at: float | None = None) -> float | None:
    """Seconds from a ``Retry-After`` header (delta-seconds or an HTTP date), or None when absent or invalid."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        return None
    return max(0.0, when.timestamp() - (time.time() if at is None else at))


async def send_attempt(client: httpx.AsyncClient, claim: Claimed, allow: AllowList) -> Attempt:
    """One signed POST of ``claim``'s payload to its checked target; never raises for the receiver's faults."""
    try:
        target = await check_url_async(claim.url, allow)
    except UnsafeTarget as exc:
        return Attempt(refused=str(exc))
    body = claim.payload.encode()
    headers = {**target.headers, "content-type": "application/json", "user-agent": USER_AGENT,
               **signed_headers(claim.secret, claim.event_id, claim.payload)}
    try:
        async with client.stream("POST", target.url, content=body, headers=headers, extensions=target.extensions,
                                 follow_redirects=False) as response:
            return Attempt(status_code=response.status_code,
                           retry_after=parse_retry_after(response.headers.get("retry-after")))
    except httpx.HTTPError as exc:
        return Attempt(error=f"{type(exc).__name__}: {exc}".rstrip(": "))


def new_client(transport: httpx.AsyncBaseTransport | None = None) -> httpx.AsyncClient:
    # No keep-alive: connections are keyed by the checked IP, so a pooled TLS connection made for one host name
    # could otherwise carry a request for another name on the same address.
    return httpx.AsyncClient(timeout=DELIVERY_TIMEOUT_SECONDS, follow_redirects=False, transport=transport,
                             limits=httpx.Limits(max_keepalive_connections=0), trust_env=False)


STOP_CHECK_SECONDS = 0.1  #: how often a sleeping deliverer looks whether it should stop


async def _sleep_unless(stop: threading.Event, seconds: float) -> None:
    """Sleep ``seconds``, or less once ``stop`` is set (a long poll interval must not hold a shutdown up)."""
    deadline = time.monotonic() + seconds
    while not stop.is_set() and (left := deadline - time.monotonic()) > 0:
        await asyncio.sleep(min(left, STOP_CHECK_SECONDS))


class Deliverer:
    """Sends the outbox until stopped; ``run`` is a thread target, ``deliver_due`` one poll (tests, tools)."""

    def __init__(self, engine: Engine, settings: Settings, transport: httpx.AsyncBaseTransport | None = None) -> None:
        self.engine = engine
        self.schedule: Sequence[float] = tuple(settings.webhook_retry_schedule)
        self.allow = AllowList.parse(settings.webhook_allow_hosts)
        self.interval = settings.planner_interval
        self.transport = transport

    def run(self, stop: threading.Event) -> None:
        """Poll, send and record until ``stop`` is set; abandoned attempts give their leases back."""
        asyncio.run(self._run(stop))

    async def deliver_due(self, client: httpx.AsyncClient) -> int:
        """Claim what is due now, send it all, and wait for the outcomes; returns how many were sent."""
        claims = await asyncio.to_thread(claim_due, self.engine, MAX_IN_FLIGHT)
        await asyncio.gather(*(self._deliver(client, claim) for claim in claims))
        return len(claims)

    async def _run(self, stop: threading.Event) -> None:
        in_flight: dict[asyncio.Task[None], Claimed] = {}
        async with new_client(self.transport) as client:
            while not stop.is_set():
                room = MAX_IN_FLIGHT - len(in_flight)
                if room > 0:
                    try:
                        claims = await asyncio.to_thread(claim_due, self.engine, room)
                    except Exception:  # the database may be away for a moment: the next poll retries
                        log.exception("claiming webhook deliveries failed")
                        claims = []
                    for claim in claims:
                        task = asyncio.create_task(self._deliver(client, claim))
                        in_flight[task] = claim
                        task.add_done_callback(lambda done: in_flight.pop(done, None))
                await _sleep_unless(stop, self.interval)
            abandoned = list(in_flight.values())
            for task in list(in_flight):
                task.cancel()
            await asyncio.gather(*in_flight, return_exceptions=True)
        if abandoned:
            release(self.engine, abandoned)

    async def _deliver(self, client: httpx.AsyncClient, claim: Claimed) -> None:
        try:
            attempt = await send_attempt(client, claim, self.allow)
        except Exception as exc:  # a bug here must cost one attempt, not the delivery loop
            log.exception("webhook delivery %s: unexpected error", claim.id)
            attempt = Attempt(error=f"internal error: {type(exc).__name__}")
        try:
            status = await asyncio.to_thread(record, self.engine, claim, attempt, self.schedule)
        except Exception:  # the lease expires and the delivery is sent again: at least once
            log.exception("recording webhook delivery %s failed", claim.id)
            return
        if status != "delivered":
            log.info("webhook %s to %s: attempt %d %s (%s)", claim.event_id, claim.url, claim.attempts + 1,
                     status or "lost its lease", attempt.refused or attempt.error or attempt.status_code)
