"""The gateway's upstream side in an API process: interactive calls through the catalogue's deployments, under the
providers' shared capacity, with fallback, the circuit breaker and accounting.

A call takes a concurrency slot (providers/slots.py, broker/capacity.py: ahead of batch lines) and a request with its
tokens from the provider's shared buckets (the lane of calls that go ahead of batch lines), waiting at most until its
deadline, then goes upstream. A 429, 5xx, timeout or dropped connection moves it to the next deployment, as long as
nothing has reached the client yet (a stream is committed once its first events for the client are in). Once the
answer is written (:attr:`Answer.settle`; a stream when it ends) the slot is freed, the usage and cost accounted
(route ``interactive``, written to SQL off the request path with other calls') and the shared limits told.
"""

import asyncio
import logging
import os
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import httpx
import orjson
import redis.asyncio as aioredis

from broker import metrics
from broker.catalogue import ProviderConfig
from broker.core import Core
from broker.errors import ProviderBusy, RetryableUpstream, TerminalUpstream, UpstreamError
from broker.gateway import INTERACTIVE_REPORTER, CallPlan, Policies
from broker.metrics import INTERACTIVE
from broker.pricing import Usage, line_cost
from broker.provider_state import publish
from broker.tokens import admission_tokens
from broker.usage import Call
from providers import circuit
from providers.base import usage_of
from providers.circuit import CircuitBreaker, Circuits
from providers.http import classified
from providers.limits import Limiter, LocalLimiter, RedisLimiter
from providers.registry import kind_of
from providers.slots import Slots
from providers.sse import EventRelay
from providers.throttle import ProviderThrottle

log = logging.getLogger(__name__)
PUBLISH_SECONDS = 2.0  #: how often an API process reports its interactive calls per provider
T = TypeVar("T")
Attempt = Callable[[ProviderConfig, str, float], Awaitable[T]]
"""One deployment's try at a call: ``(provider, slot, deadline)`` -> its result (see :meth:`Gateway._fallback`)."""


def _log_failure(what: str) -> Callable[["asyncio.Future[None]"], None]:
    def logged(task: "asyncio.Future[None]") -> None:
        if not task.cancelled() and (exc := task.exception()) is not None:
            log.error("%s failed", what, exc_info=exc)

    return logged


async def _settled() -> None:
    return None


@dataclass(frozen=True, slots=True)
class Answer:
    provider: str
    status: int
    content: bytes
    request_id: str | None = None
    #: what is left of the call once its answer is written (or its client is gone): its slot freed and its usage
    #: accounted before the first await, then the shared limits told how it went. Whoever gets an Answer awaits it.
    settle: Callable[[], Awaitable[None]] = _settled


@dataclass(frozen=True, slots=True)
class Stream:
    provider: str
    events: AsyncIterator[bytes]


class Gateway:
    def __init__(self, core: Core, limiter: Limiter, circuits: Circuits | None = None) -> None:
        self.core, self.limiter = core, limiter
        self._clients: dict[str, httpx.AsyncClient] = {}
        self._throttles: dict[str, ProviderThrottle] = {}
        self.circuits = circuits or Circuits()  #: the process' breakers (its workers' too, in embedded mode)
        self.slots = Slots(core.engine)  #: concurrency slots ahead of batch lines
        self.policies = Policies(core.engine)  #: projects' budgets and regions, as recently read
        self.reporter_id = f"{INTERACTIVE_REPORTER}{socket.gethostname()}:{os.getpid()}"
        self._published_at = 0.0
        self._publishing: set[asyncio.Future[None]] = set()  #: reports being written (held: a task is weakly held)
        self._refreshing: dict[tuple[str, str | None], asyncio.Future[None]] = {}  #: callers' policies being read

    @classmethod
    def for_process(cls, core: Core, limiter: Limiter | None, circuits: Circuits | None = None) -> "Gateway":
        """Created on the loop that serves the API. ``limiter``: the one the process' workers use (embedded mode);
        else Redis when configured, else in memory. ``circuits``: the breakers of the process' workers, if any."""
        if limiter is None:
            url = core.settings.redis_url
            limiter = RedisLimiter(aioredis.Redis.from_url(url)) if url else LocalLimiter()
        return cls(core, limiter, circuits)

    # --- per provider ---------------------------------------------------------------------------------------------

    def _client(self, provider: ProviderConfig) -> httpx.AsyncClient:
        if provider.name not in self._clients:
            self._clients[provider.name] = kind_of(provider).client(provider)
        return self._clients[provider.name]

    def throttle(self, provider: ProviderConfig) -> ProviderThrottle:
        if provider.name not in self._throttles:
            self._throttles[provider.name] = ProviderThrottle(provider, self.limiter)
        return self._throttles[provider.name]

    def _circuit(self, provider: ProviderConfig) -> CircuitBreaker:
        return self.circuits(provider.name)

    # --- bookkeeping --------------------------------------------------------------------------------------------

    def _release(self, provider: ProviderConfig, slot: str, plan: CallPlan | None = None,
                 call: Call | None = None) -> None:
        self.slots.release(provider.name, slot, plan.project_id if plan else "", call, plan.key_id if plan else None)
        if time.monotonic() - self._published_at > PUBLISH_SECONDS:
            self._report()

    def _report(self) -> None:
        """Publish this process' provider state now, in a task of its own."""
        self._published_at = time.monotonic()
        task = asyncio.ensure_future(self._publish())
        self._publishing.add(task)
        task.add_done_callback(self._publishing.discard)
        task.add_done_callback(_log_failure("publishing interactive provider state"))

    def _circuit_opened(self) -> None:
        """Said at once, not with the next call's report (there may be none for a while); and again when the
        cooldown ends, so the open circuit does not outlive it in the report."""
        self._report()
        asyncio.get_running_loop().call_later(circuit.CIRCUIT_COOLDOWN_SECONDS + PUBLISH_SECONDS, self._report)

    def keep_fresh(self, project_id: str, key_id: str | None) -> None:
        """Re-read a caller's policies in a thread once they are due (:meth:`Policies.due`): a steady caller's calls
        never wait for the query, and none uses policies older than their TTL (a call that finds them so reads them
        first, as before)."""
        caller = (project_id, key_id)
        if caller in self._refreshing or not self.policies.due(project_id, key_id):
            return
        task = self._refreshing[caller] = asyncio.ensure_future(
            asyncio.to_thread(self.policies.refresh, project_id, key_id))
        task.add_done_callback(lambda _: self._refreshing.pop(caller, None))
        task.add_done_callback(_log_failure("re-reading a project's policies"))

    async def _publish(self) -> None:
        """This process' interactive calls and circuit state per provider, beside the workers' reports
        (``GET /v1/providers``)."""
        rows = [await throttle.report(self.reporter_id, self.circuits.down(name))
                for name, throttle in self._throttles.items()]
        if rows:
            await asyncio.to_thread(publish, self.core.engine, rows)

    async def _rate(self, throttle: ProviderThrottle, plan: CallPlan, endpoint: str, deadline: float) -> int:
        """Take the call's request and tokens ahead of batch lines; wait for them unless that outlasts the
        deadline (then 429, never a call the provider would refuse). Returns the tokens taken."""
        tokens = admission_tokens(endpoint, plan.body) if throttle.active else 0
        wait = await throttle.reserve_first(plan.model, tokens)
        if wait > deadline - time.monotonic():
            await throttle.unreserve(plan.model, tokens)
            raise ProviderBusy(f"{throttle.provider.name} is at its rate limit; try again shortly.", retry_after=wait)
        if wait > 0:
            await asyncio.sleep(wait)
        return tokens

    def _account(self, provider: ProviderConfig, model: str, usage: Usage) -> Call:
        share = provider.price_multiplier(model, time.time())
        call = (provider.name, model, INTERACTIVE, usage.input_tokens, usage.output_tokens,
                line_cost(provider, model, usage) * share)
        metrics.record_usage(*call)
        return call

    async def _ended(self, provider: ProviderConfig, plan: CallPlan, started: float, tokens: int,
                     exc: UpstreamError | None, usage: Usage | None = None,
                     limits: tuple[int | None, int | None] = (None, None), latency: float | None = None) -> None:
        """The call's outcome to the metrics, the shared limits and the circuit; ``latency``: the upstream's,
        when the call ended a while ago (its answer was written first)."""
        actual = usage.input_tokens + usage.output_tokens if usage is not None else None
        latency = time.monotonic() - started if latency is None else latency
        metrics.record_call(provider.name, plan.model, INTERACTIVE, metrics.call_code(exc) if exc else 200, latency)
        await self.throttle(provider).after(plan.model, latency, tokens, actual, limits,
                                            rate_limited=exc is not None and exc.status == 429)
        if self._circuit(provider).record(failed=isinstance(exc, RetryableUpstream) and exc.status != 429):
            self._circuit_opened()

    # --- calls ----------------------------------------------------------------------------------------------------

    def _candidates(self, plan: CallPlan) -> list[ProviderConfig]:
        """Deployments in fallback order; one whose circuit is open is skipped while another remains."""
        up = [p for p in plan.deployments if not self._circuit(p).down]
        return up or plan.deployments[-1:]

    @staticmethod
    def _payload(provider: ProviderConfig, plan: CallPlan, **changes: Any) -> bytes:
        body = {**plan.body, "model": provider.upstream_name(plan.model), **changes}
        return orjson.dumps({k: v for k, v in body.items() if v is not None})

    async def _fallback(self, plan: CallPlan, max_wait: float, attempt: Attempt[T]) -> T:
        """What ``attempt`` makes of the first deployment that neither is full nor fails with a 429, 5xx, timeout or
        connection error (then the next one is tried); raises the last failure, or :class:`ProviderBusy`, when none
        does. ``attempt(provider, slot, deadline)`` owns the slot once it returns; a failed attempt's is freed here."""
        deadline = time.monotonic() + max_wait
        failure: ProviderBusy | UpstreamError | None = None
        for provider in self._candidates(plan):
            try:
                slot = await self.slots.admit(provider, plan.project_id, plan.rank, deadline)
            except ProviderBusy as exc:
                failure = failure or exc
                continue
            try:
                return await attempt(provider, slot, deadline)
            except (ProviderBusy, RetryableUpstream) as exc:
                self._release(provider, slot)
                failure = exc
            except BaseException:
                self._release(provider, slot)
                raise
        assert failure is not None
        raise failure

    async def call(self, plan: CallPlan, endpoint: str, max_wait: float) -> Answer:
        """The first deployment's answer that is not a 429/5xx/timeout/connection error (a 4xx is answered as
        is), with fallback as :meth:`_fallback` says. The caller writes it, then awaits its ``settle``: nothing
        between the upstream's answer and the client's waits for the bookkeeping."""
        async def answer(provider: ProviderConfig, slot: str, deadline: float) -> Answer:
            tokens = await self._rate(self.throttle(provider), plan, endpoint, deadline)
            started = time.monotonic()
            try:
                resp = await kind_of(provider).realtime(self._client(provider)).post(endpoint,
                                                                                     self._payload(provider, plan))
            except TerminalUpstream as exc:
                return Answer(provider.name, exc.status or 400, (exc.body or "").encode(), exc.request_id,
                              self._settle(provider, plan, slot, started, tokens, exc))
            except UpstreamError as exc:
                await self._ended(provider, plan, started, tokens, exc)
                raise
            return Answer(provider.name, resp.status, resp.content, resp.request_id,
                          self._settle(provider, plan, slot, started, tokens, None, usage_of(resp.json),
                                       resp.header_limits))

        return await self._fallback(plan, max_wait, answer)

    def _settle(self, provider: ProviderConfig, plan: CallPlan, slot: str, started: float, tokens: int,
                exc: TerminalUpstream | None, usage: Usage | None = None,
                limits: tuple[int | None, int | None] = (None, None)) -> Callable[[], Awaitable[None]]:
        """An answered call's bookkeeping (see :attr:`Answer.settle`); a refused one (``exc``) costs nothing."""
        latency = time.monotonic() - started

        async def settle() -> None:
            account = self._account(provider, plan.model, usage) if usage is not None else None
            self._release(provider, slot, plan, account)
            await self._ended(provider, plan, started, tokens, exc, usage, limits, latency)

        return settle

    async def stream(self, plan: CallPlan, endpoint: str, max_wait: float) -> Stream:
        """Server-sent events from the first deployment whose stream starts; fallback as :meth:`_fallback` says,
        until the first events for the client are in (nothing has reached the client before this returns)."""
        return await self._fallback(plan, max_wait, lambda provider, slot, deadline:
                                    self._open(provider, plan, endpoint, slot, deadline))

    async def _open(self, provider: ProviderConfig, plan: CallPlan, endpoint: str, call_id: str,
                    deadline: float) -> Stream:
        tokens = await self._rate(self.throttle(provider), plan, endpoint, deadline)
        started = time.monotonic()
        options = plan.body.get("stream_options")
        include = isinstance(options, dict) and options.get("include_usage") is True
        adapter = kind_of(provider).realtime(self._client(provider))
        relay = adapter.relay(include)
        asks = {"stream_options": {**(options or {}), "include_usage": True}} if endpoint != "/v1/responses" \
            else {}
        try:
            upstream = await adapter.open_stream(endpoint, self._payload(provider, plan, **asks))
            chunks = upstream.aiter_raw()
            try:
                first = await self._first_events(chunks, relay)
            except BaseException:
                await upstream.aclose()
                raise
        except UpstreamError as exc:
            await self._ended(provider, plan, started, tokens, exc)
            raise
        events = self._relay(provider, plan, call_id, upstream, chunks, first, relay, started, tokens)
        return Stream(provider.name, events)

    @staticmethod
    async def _first_events(chunks: AsyncIterator[bytes], relay: EventRelay) -> bytes:
        """The stream's first events for the client (an upstream error told before them is raised)."""
        with classified():
            async for data in chunks:
                if out := relay.feed(data):
                    return out
        raise RetryableUpstream("Upstream ended its stream before any event.", code="upstream_invalid_response")

    async def _relay(self, provider: ProviderConfig, plan: CallPlan, call_id: str, upstream: httpx.Response,
                     chunks: AsyncIterator[bytes], first: bytes, relay: EventRelay, started: float,
                     tokens: int) -> AsyncIterator[bytes]:
        failure: UpstreamError | None = None
        try:
            yield first
            with classified():
                async for data in chunks:
                    if out := relay.feed(data):
                        yield out
            if rest := relay.rest():
                yield rest
        except UpstreamError as exc:  # the client already has part of the answer: the stream just ends
            log.warning("provider %s: stream broke after it started: %s", provider.name, exc.message)
            failure = exc
        finally:
            # accounted before any await: a client that hung up cancels this generator at its next await
            usage = usage_of({"usage": relay.usage or {}})
            self._release(provider, call_id, plan, self._account(provider, plan.model, usage))
            await asyncio.shield(self._closed(upstream, provider, plan, started, tokens, failure or relay.failure,
                                              usage))

    async def _closed(self, upstream: httpx.Response, provider: ProviderConfig, plan: CallPlan, started: float,
                      tokens: int, failure: UpstreamError | None, usage: Usage) -> None:
        await upstream.aclose()
        await self._ended(provider, plan, started, tokens, failure, usage)
