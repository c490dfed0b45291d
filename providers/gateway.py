"""The gateway's upstream side in an API process: interactive calls through the catalogue's deployments, under the
providers' shared capacity, with fallback, the circuit breaker and accounting.

A call takes a concurrency slot (broker/capacity.py: ahead of batch lines) and a request with its tokens from the
provider's shared buckets (the lane of calls that go ahead of batch lines), waiting at most until its deadline, then
goes upstream. A 429, 5xx, timeout or dropped connection moves it to the next deployment, as long as nothing has
reached the client yet (a stream is committed once its first bytes are in). Its slot is freed and its usage and cost
written (route ``interactive``) in one transaction off the request path.
"""

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import httpx
import orjson
import redis.asyncio as aioredis

from broker.capacity import try_admit
from broker.catalogue import ProviderConfig
from broker.core import Core
from broker.errors import ProviderBusy, RetryableUpstream, TerminalUpstream, UpstreamError
from broker.gateway import INTERACTIVE, CallPlan, Policies
from broker.ids import new_id
from broker.interactive import end, renew
from broker.pricing import Usage, line_cost
from broker.tokens import admission_tokens
from broker.usage import Call
from providers.base import UpstreamResponse, usage_of
from providers.circuit import CircuitBreaker
from providers.http import classified
from providers.limits import Limiter, LocalLimiter, RedisLimiter
from providers.registry import kind_of
from providers.sse import Relay, StreamingAdapter, chat_chunks
from providers.throttle import ProviderThrottle

log = logging.getLogger(__name__)
POLL_SECONDS = 0.01  #: a waiting call looks for a free slot this often (at once when a call of this process ends)
SLOT_LEASE_SECONDS = 30.0  #: a call's slot stops counting this long after its process last renewed it
RENEW_SECONDS = 10.0  #: how often a process renews the slots of its running calls


@dataclass(frozen=True, slots=True)
class Answer:
    provider: str
    status: int
    content: bytes
    request_id: str | None = None


@dataclass(frozen=True, slots=True)
class Stream:
    provider: str
    events: AsyncIterator[bytes]


class Gateway:
    def __init__(self, core: Core, limiter: Limiter) -> None:
        self.core, self.limiter = core, limiter
        self._clients: dict[str, httpx.AsyncClient] = {}
        self._throttles: dict[str, ProviderThrottle] = {}
        self._circuits: dict[str, CircuitBreaker] = {}
        self._held: set[str] = set()
        self._freed = asyncio.Event()
        self._renewed_at = time.monotonic()
        self._tasks: set[asyncio.Future[None]] = set()
        self.policies = Policies(core.engine)  #: projects' budgets and regions, as recently read

    @classmethod
    def for_process(cls, core: Core, limiter: Limiter | None) -> "Gateway":
        """Created on the loop that serves the API. ``limiter``: the one the process' workers use (embedded mode);
        else Redis when configured, else in memory."""
        if limiter is None:
            url = core.settings.redis_url
            limiter = RedisLimiter(aioredis.Redis.from_url(url)) if url else LocalLimiter()
        return cls(core, limiter)

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
        return self._circuits.setdefault(provider.name, CircuitBreaker())

    # --- capacity -------------------------------------------------------------------------------------------------

    def _background(self, fn: Callable[..., None], *args: Any) -> None:
        task = asyncio.ensure_future(asyncio.to_thread(fn, *args))
        self._tasks.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: "asyncio.Future[None]") -> None:
        self._tasks.discard(task)
        if not task.cancelled() and (exc := task.exception()) is not None:
            log.error("gateway bookkeeping failed", exc_info=exc)

    async def _admit(self, provider: ProviderConfig, plan: CallPlan, deadline: float) -> str:
        """A concurrency slot for the call (its id), waiting until ``deadline`` at most."""
        engine, call_id, created = self.core.engine, new_id("icall"), time.time()
        admitted = await asyncio.to_thread(
            try_admit, engine, provider, call_id, project_id=plan.project_id, rank=plan.rank, created_at=created,
            lease_until=created + SLOT_LEASE_SECONDS, at=created, new=True)
        self._held.add(call_id)
        while not admitted:
            left = deadline - time.monotonic()
            if left <= 0:
                self._release(call_id)
                raise ProviderBusy(f"{provider.name} has no capacity free for this call; try again shortly.",
                                   retry_after=1.0)
            self._freed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._freed.wait(), min(POLL_SECONDS, left))
            admitted = await asyncio.to_thread(
                try_admit, engine, provider, call_id, project_id=plan.project_id, rank=plan.rank, created_at=created,
                lease_until=created + SLOT_LEASE_SECONDS, at=time.time(), new=False)
        if time.monotonic() - self._renewed_at > RENEW_SECONDS:
            self._renewed_at = time.monotonic()
            self._background(renew, engine, sorted(self._held), time.time() + SLOT_LEASE_SECONDS, time.time())
        return call_id

    def _release(self, call_id: str, plan: CallPlan | None = None, call: Call | None = None) -> None:
        self._held.discard(call_id)
        self._freed.set()
        self._background(end, self.core.engine, call_id, time.time(), plan.project_id if plan else "",
                         [call] if call else [])

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
        return (provider.name, model, INTERACTIVE, usage.input_tokens, usage.output_tokens,
                line_cost(provider, model, usage) * share)

    async def _ended(self, provider: ProviderConfig, plan: CallPlan, started: float, tokens: int,
                     exc: UpstreamError | None, usage: Usage | None = None,
                     limits: tuple[int | None, int | None] = (None, None)) -> None:
        actual = usage.input_tokens + usage.output_tokens if usage is not None else None
        await self.throttle(provider).after(plan.model, time.monotonic() - started, tokens, actual, limits,
                                            rate_limited=exc is not None and exc.status == 429)
        self._circuit(provider).record(failed=isinstance(exc, RetryableUpstream) and exc.status != 429)

    # --- calls ----------------------------------------------------------------------------------------------------

    def _candidates(self, plan: CallPlan) -> list[ProviderConfig]:
        """Deployments in fallback order; one whose circuit is open is skipped while another remains."""
        up = [p for p in plan.deployments if not self._circuit(p).down]
        return up or plan.deployments[-1:]

    @staticmethod
    def _payload(provider: ProviderConfig, plan: CallPlan, **changes: Any) -> bytes:
        body = {**plan.body, "model": provider.upstream_name(plan.model), **changes}
        return orjson.dumps({k: v for k, v in body.items() if v is not None})

    async def call(self, plan: CallPlan, endpoint: str, max_wait: float) -> Answer:
        """The first deployment's answer that is not a 429/5xx/timeout/connection error (a 4xx is answered as
        is); raises the last failure, or :class:`ProviderBusy`, when none gives one."""
        deadline = time.monotonic() + max_wait
        failure: ProviderBusy | UpstreamError | None = None
        for provider in self._candidates(plan):
            try:
                call_id = await self._admit(provider, plan, deadline)
            except ProviderBusy as exc:
                failure = failure or exc
                continue
            try:
                resp = await self._post(provider, plan, endpoint, deadline)
            except (ProviderBusy, RetryableUpstream) as exc:
                self._release(call_id)
                failure = exc
                continue
            except TerminalUpstream as exc:
                self._release(call_id)
                return Answer(provider.name, exc.status or 400, (exc.body or "").encode(), exc.request_id)
            except BaseException:
                self._release(call_id)
                raise
            self._release(call_id, plan, self._account(provider, plan.model, usage_of(resp.json)))
            return Answer(provider.name, resp.status, resp.text.encode(), resp.request_id)
        assert failure is not None
        raise failure

    async def _post(self, provider: ProviderConfig, plan: CallPlan, endpoint: str,
                    deadline: float) -> UpstreamResponse:
        tokens = await self._rate(self.throttle(provider), plan, endpoint, deadline)
        started = time.monotonic()
        try:
            resp = await kind_of(provider).realtime(self._client(provider)).post(endpoint,
                                                                                 self._payload(provider, plan))
        except UpstreamError as exc:
            await self._ended(provider, plan, started, tokens, exc)
            raise
        await self._ended(provider, plan, started, tokens, None, usage_of(resp.json), resp.header_limits)
        return resp

    async def stream(self, plan: CallPlan, endpoint: str, max_wait: float) -> Stream:
        """Server-sent events from the first deployment whose stream starts; fallback as :meth:`call` until then."""
        deadline = time.monotonic() + max_wait
        failure: ProviderBusy | UpstreamError | None = None
        for provider in self._candidates(plan):
            try:
                call_id = await self._admit(provider, plan, deadline)
            except ProviderBusy as exc:
                failure = failure or exc
                continue
            try:
                events = await self._open(provider, plan, endpoint, deadline, call_id)
            except (ProviderBusy, RetryableUpstream) as exc:
                self._release(call_id)
                failure = exc
                continue
            except BaseException:
                self._release(call_id)
                raise
            return Stream(provider.name, events)
        assert failure is not None
        raise failure

    async def _open(self, provider: ProviderConfig, plan: CallPlan, endpoint: str, deadline: float,
                    call_id: str) -> AsyncIterator[bytes]:
        """The call's events, its first bytes already in (nothing has reached the client before this returns)."""
        tokens = await self._rate(self.throttle(provider), plan, endpoint, deadline)
        started = time.monotonic()
        options = plan.body.get("stream_options")
        include = isinstance(options, dict) and options.get("include_usage") is True
        adapter = kind_of(provider).realtime(self._client(provider))
        try:
            if not isinstance(adapter, StreamingAdapter):  # told as chunks from the whole answer
                resp = await adapter.post(endpoint, self._payload(provider, plan, stream=None, stream_options=None))
                await self._ended(provider, plan, started, tokens, None, usage_of(resp.json), resp.header_limits)
                return self._told(plan, provider, call_id, chat_chunks(resp.json, include), usage_of(resp.json))
            asks = {"stream_options": {**(options or {}), "include_usage": True}} if endpoint != "/v1/responses" \
                else {}
            upstream = await adapter.open_stream(endpoint, self._payload(provider, plan, **asks))
            chunks = upstream.aiter_raw()
            try:
                with classified():
                    first = await anext(chunks)
            except BaseException:
                await upstream.aclose()
                raise
        except UpstreamError as exc:
            await self._ended(provider, plan, started, tokens, exc)
            raise
        return self._relay(provider, plan, call_id, upstream, chunks, first, Relay(include), started, tokens)

    async def _told(self, plan: CallPlan, provider: ProviderConfig, call_id: str, events: bytes,
                    usage: Usage) -> AsyncIterator[bytes]:
        try:
            yield events
        finally:
            self._release(call_id, plan, self._account(provider, plan.model, usage))

    async def _relay(self, provider: ProviderConfig, plan: CallPlan, call_id: str, upstream: httpx.Response,
                     chunks: AsyncIterator[bytes], first: bytes, relay: Relay, started: float,
                     tokens: int) -> AsyncIterator[bytes]:
        failure: UpstreamError | None = None
        try:
            yield relay.feed(first)
            with classified():
                async for data in chunks:
                    if out := relay.feed(data):
                        yield out
            yield relay.rest()
        except UpstreamError as exc:  # the client already has part of the answer: the stream just ends
            log.warning("provider %s: stream broke after it started: %s", provider.name, exc.message)
            failure = exc
        finally:
            await upstream.aclose()
            usage = usage_of({"usage": relay.usage or {}})
            await self._ended(provider, plan, started, tokens, failure, usage)
            self._release(call_id, plan, self._account(provider, plan.model, usage))
