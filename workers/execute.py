"""Running leased lines against a provider: one call per line, embeddings packed into array calls.

Every line ends in an Outcome: succeeded, failed for good (with the upstream's status and body, or our
error code), or retry after a backoff that honours ``Retry-After``, bounded by attempts and the deadline.
"""

import asyncio
import logging
import random
import time
from collections import defaultdict
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from broker import metrics
from broker.catalogue import Catalogue
from broker.dispatch import LeasedLine
from broker.errors import RetryableUpstream, TerminalUpstream, UpstreamError
from broker.pricing import Usage, line_cost
from broker.results import Outcome
from broker.routing import OFF_PEAK, REALTIME
from broker.tokens import admission_tokens
from providers.answers import check_vectors
from providers.base import Adapter, UpstreamResponse, usage_of
from providers.circuit import CircuitBreaker
from providers.throttle import ProviderThrottle
from schemas.batches import EMBEDDINGS_ENDPOINT
from workers.project_limits import ProjectLimits

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    max_attempts: int
    base_seconds: float
    max_seconds: float

    def delay(self, attempts: int, asked: float | None) -> float:
        """Exponential backoff with full jitter, never shorter than what the upstream asked for."""
        backoff = min(self.max_seconds, self.base_seconds * 2 ** max(0, attempts - 1))
        return max(asked or 0.0, random.uniform(backoff / 2, backoff))


@dataclass(frozen=True, slots=True)
class Request:
    """A leased line with its body parsed (once, for every step of its call)."""

    line: LeasedLine
    body: dict[str, Any]

    @property
    def model(self) -> str | None:
        model = self.body.get("model")
        return model if isinstance(model, str) else None


class LeaseMovedOn(Exception):
    """A line's lease moved on while its call waited for a limit: the call is not made (DESIGN.md invariant 9)."""


#: embedding requests packed into one call: each with its inputs, all sharing the other parameters
Pack = list[tuple[Request, list[str]]]
#: one upstream call to run: its outcomes when awaited, and its lines' (id, attempts) as leased
Call = tuple[Coroutine[Any, Any, list[Outcome]], list[tuple[int, int]]]


class LineRunner:
    def __init__(self, adapter: Adapter, policy: RetryPolicy, throttle: ProviderThrottle,
                 catalogue: Catalogue | None = None, circuit: CircuitBreaker | None = None,
                 held: Callable[[int], bool] = lambda line_id: True,
                 project_limits: ProjectLimits | None = None) -> None:
        self.adapter = adapter
        self.policy = policy
        self.throttle = throttle
        self.provider = throttle.provider
        self.catalogue = catalogue  #: where fallback deployments are found; None: no fallback
        self.circuit = circuit or CircuitBreaker()  #: the process' breaker for this provider
        self.held = held  #: whether a line's lease is still ours: a line that lost it is not sent (no outcome)
        self.embedding_batch_size = throttle.provider.embedding_batch_size
        self.project_limits = project_limits  #: the limits of the lines' projects; None: none apply

    async def _call(self, endpoint: str, body: dict[str, Any], model: str | None, lines: Sequence[LeasedLine],
                    payload: bytes | None = None) -> UpstreamResponse:
        """One upstream call of ``model`` for ``lines`` under the shared limits of the provider and of the lines'
        projects; ``payload`` is ``body`` already encoded. Raises :class:`LeaseMovedOn`, sending nothing, when a
        line's lease moved on while the call waited for a limit."""
        batch_ids = [line.batch_id for line in lines]
        own = await self.project_limits.keys(batch_ids, model) if self.project_limits is not None else []
        estimated = admission_tokens(endpoint, body) if self.throttle.active or own else 0
        upstream = self.provider.upstream_name(model) if model is not None else None
        if upstream != model:  # the provider knows the model by another name
            payload = orjson.dumps({**body, "model": upstream})
        await self.throttle.before(model, estimated, own)
        if not all(self.held(line.id) for line in lines):
            await self.throttle.unreserve(model, estimated)
            raise LeaseMovedOn
        route = OFF_PEAK if self.provider.price_multiplier(model or "", time.time()) < 1.0 else REALTIME
        start = time.monotonic()
        try:
            with metrics.in_flight(self.provider.name, model, route):
                resp = await self.adapter.post(endpoint, payload if payload is not None else orjson.dumps(body))
            if endpoint == EMBEDDINGS_ENDPOINT:
                check_vectors(body, resp.json, resp.content)
        except UpstreamError as exc:
            metrics.record_call(self.provider.name, model, route, metrics.call_code(exc), time.monotonic() - start)
            await self.throttle.after(model, time.monotonic() - start, estimated, None, (None, None),
                                      rate_limited=exc.status == 429, own=own,
                                      retry_after=exc.delay if isinstance(exc, RetryableUpstream) else None)
            self.circuit.record(failed=isinstance(exc, RetryableUpstream) and exc.status != 429)
            raise
        metrics.record_call(self.provider.name, model, route, resp.status, time.monotonic() - start)
        self.circuit.record(failed=False)
        usage = usage_of(resp.json)
        await self.throttle.after(model, time.monotonic() - start, estimated, usage.input_tokens + usage.output_tokens,
                                  resp.header_limits, rate_limited=False, own=own)
        return resp

    def fallback(self, request: Request) -> tuple[str, bool] | None:
        """The deployment a failing line moves to, and whether that wraps around to the first one: the next
        provider serving its model that the batch may use, in catalogue order."""
        line = request.line
        if self.catalogue is None or request.model is None:
            return None
        names = [p.name for p in self.catalogue.deployments(request.model, line.endpoint)
                 if line.eligible is None or p.name in line.eligible]
        if self.provider.name not in names or len(names) < 2:
            return None
        at = names.index(self.provider.name)
        return names[(at + 1) % len(names)], at + 1 == len(names)

    def calls(self, lines: Sequence[LeasedLine]) -> list[Call]:
        """One coroutine per upstream call the lines need (a line, or a pack of embedding lines) giving its lines'
        outcomes (none raises), with its lines' ``(id, attempts)``. Run them as tasks so that each call's slot
        frees the moment it ends."""
        singles, packs = self._plan([Request(line, orjson.loads(line.body)) for line in lines])
        return [*((self._single_outcomes(r), [(r.line.id, r.line.attempts)]) for r in singles),
                *((self._pack(pack), [(r.line.id, r.line.attempts) for r, _ in pack]) for pack in packs)]

    async def run(self, lines: Sequence[LeasedLine]) -> list[Outcome]:
        """Every line's outcome, the calls running concurrently."""
        return [o for outcomes in await asyncio.gather(*(call for call, _ in self.calls(lines))) for o in outcomes]

    async def _single_outcomes(self, request: Request) -> list[Outcome]:
        outcome = await self._single(request) if self.held(request.line.id) else None
        return [outcome] if outcome is not None else []

    def _plan(self, requests: Sequence[Request]) -> tuple[list[Request], list[Pack]]:
        singles: list[Request] = []
        groups: dict[bytes, Pack] = defaultdict(list)
        for request in requests:
            inputs = _packable_inputs(request.body) if request.line.endpoint == EMBEDDINGS_ENDPOINT else None
            if inputs is None:
                singles.append(request)
                continue
            params = {k: v for k, v in request.body.items() if k != "input"}
            groups[orjson.dumps(params, option=orjson.OPT_SORT_KEYS)].append((request, inputs))
        packs: list[Pack] = []
        for members in groups.values():
            current: Pack = []
            size = 0
            for member in members:
                n = len(member[1])
                if current and size + n > self.embedding_batch_size:
                    packs.append(current)
                    current, size = [], 0
                current.append(member)
                size += n
            packs.append(current)
        return singles, packs

    def _skip_down_provider(self, request: Request) -> Outcome | None:
        """While the provider is down, a line with another deployment moves there without a call."""
        if not self.circuit.down or (move := self.fallback(request)) is None:
            return None
        line = request.line
        return Outcome(line.id, line.batch_id, "retry", error_code="provider_unavailable",
                       error_message=f"{self.provider.name} is failing; moved to {move[0]}.", not_before=time.time(),
                       refund_attempt=True, move_to=move[0])

    async def _single(self, request: Request) -> Outcome | None:
        """The line's outcome; None if its lease moved on before it was sent (it is not ours to end)."""
        if (skipped := self._skip_down_provider(request)) is not None:
            return skipped
        line = request.line
        try:
            resp = await self._call(line.endpoint, request.body, request.model, [line], line.body.encode())
        except LeaseMovedOn:
            return None
        except UpstreamError as exc:
            return self._failure(request, exc)
        except Exception as exc:  # our own trouble (a limiter's Redis, say): retry the line, never lose the chunk
            log.exception("line %s: call failed inside the broker", line.id)
            return self._failure(request, RetryableUpstream(f"Broker error before the call: {exc!r}",
                                                            code="broker_error"))
        return self._success(line, resp.status, resp.text, resp.request_id, usage_of(resp.json), request.model)

    def _success(self, line: LeasedLine, status: int, body: str, request_id: str | None, usage: Usage,
                 model: str | None) -> Outcome:
        provider = self.provider
        share = provider.price_multiplier(model or "", time.time())  # inside an off-peak window: its price
        cost, route = line_cost(provider, model, usage) * share, OFF_PEAK if share < 1.0 else REALTIME
        metrics.record_usage(provider.name, model, route, usage.input_tokens, usage.output_tokens, cost)
        return Outcome(line.id, line.batch_id, "succeeded", status, body, request_id,
                       input_tokens=usage.input_tokens, output_tokens=usage.output_tokens,
                       cost_usd=cost, provider=provider.name, model=model, route=route)

    async def _pack(self, pack: Pack) -> list[Outcome]:
        pack = [member for member in pack if self.held(member[0].line.id)]
        if not pack:
            return []
        if len(pack) == 1 or self.circuit.down:
            return await self._singles(pack)
        first = pack[0][0]
        body = {**first.body, "input": [text for _, inputs in pack for text in inputs]}
        try:
            resp = await self._call(EMBEDDINGS_ENDPOINT, body, first.model, [request.line for request, _ in pack])
            return [self._success(request.line, resp.status, text, resp.request_id, usage, first.model)
                    for request, text, usage in _split_embeddings(pack, resp)]
        except LeaseMovedOn:
            return []
        except TerminalUpstream:  # one bad input fails the whole call: run them one by one to isolate it
            return await self._singles(pack)
        except UpstreamError as exc:
            return [self._failure(request, exc) for request, _ in pack]
        except Exception as exc:  # our own trouble: retry the lines, never lose the chunk
            log.exception("packed call failed inside the broker")
            broker_error = RetryableUpstream(f"Broker error before the call: {exc!r}", code="broker_error")
            return [self._failure(request, broker_error) for request, _ in pack]

    async def _singles(self, pack: Pack) -> list[Outcome]:
        """The pack's lines called one by one."""
        outcomes = await asyncio.gather(*(self._single(request) for request, _ in pack))
        return [outcome for outcome in outcomes if outcome is not None]

    def _failure(self, request: Request, exc: UpstreamError) -> Outcome:
        line = request.line
        now = time.time()
        # a 429 that says when to come back was refused unprocessed, and our own trouble (Redis away) sent nothing:
        # the deadline bounds those, not the attempts
        refused = isinstance(exc, RetryableUpstream) and (exc.status == 429 and exc.delay is not None
                                                          or exc.code == "broker_error")
        if isinstance(exc, RetryableUpstream) and (refused or line.attempts < self.policy.max_attempts):
            # down or over its limit: the next deployment takes the line at once (after a backoff on wrapping)
            move = self.fallback(request) if exc.code != "broker_error" else None
            wait = self.policy.delay(line.attempts, exc.delay) if move is None or move[1] else 0.0
            not_before = now + wait
            if line.expires_at is None or not_before < line.expires_at:
                return Outcome(line.id, line.batch_id, "retry", error_code=exc.code, error_message=exc.message,
                               not_before=not_before, refund_attempt=refused, move_to=move and move[0])
        if exc.status is not None:
            return Outcome(line.id, line.batch_id, "failed", exc.status, exc.body, exc.request_id)
        return Outcome(line.id, line.batch_id, "failed", error_code=exc.code, error_message=exc.message)


def _packable_inputs(body: dict[str, Any]) -> list[str] | None:
    value = body.get("input")
    if isinstance(value, str) and value:
        return [value]
    if isinstance(value, list) and value and all(isinstance(v, str) and v for v in value):
        return value
    return None


def _split_embeddings(pack: Pack, resp: UpstreamResponse) -> list[tuple[Request, str, Usage]]:
    """Give each line its own embeddings response; usage is shared out by input length."""
    data = sorted(resp.json["data"], key=lambda d: d.get("index", 0))  # checked: one per input (_call)
    sizes = [len(inputs) for _, inputs in pack]
    weights = [sum(len(t) for t in inputs) for _, inputs in pack]
    total_tokens = usage_of(resp.json).input_tokens
    outcomes: list[tuple[Request, str, Usage]] = []
    offset = given = 0
    for n, ((request, _), size) in enumerate(zip(pack, sizes, strict=True)):
        items = [{**item, "index": i} for i, item in enumerate(data[offset:offset + size])]
        offset += size
        tokens = total_tokens - given if n == len(pack) - 1 else total_tokens * weights[n] // sum(weights)
        given += tokens
        body = {"object": "list", "data": items, "model": resp.json.get("model"),
                "usage": {"prompt_tokens": tokens, "total_tokens": tokens}}
        outcomes.append((request, orjson.dumps(body).decode(), Usage(input_tokens=tokens)))
    return outcomes
