"""Running leased lines against a provider: one call per line, embeddings packed into array calls.

Every line ends in an Outcome: succeeded, failed for good (with the upstream's status and body, or our
error code), or retry after a backoff that honours ``Retry-After``, bounded by attempts and the deadline.
"""

import asyncio
import logging
import random
import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import orjson

from broker.catalogue import Catalogue
from broker.dispatch import LeasedLine
from broker.errors import RetryableUpstream, TerminalUpstream, UpstreamError
from broker.pricing import Usage, line_cost
from broker.results import Outcome
from broker.routing import OFF_PEAK, REALTIME
from broker.tokens import admission_tokens
from providers.openai import UpstreamResponse, usage_of
from providers.throttle import ProviderThrottle

EMBEDDINGS = "/v1/embeddings"
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


class Adapter(Protocol):
    """A provider kind's real-time call: an OpenAI-format request in, an OpenAI-format answer out."""

    async def post(self, endpoint: str, body: bytes) -> UpstreamResponse: ...


class LineRunner:
    def __init__(self, adapter: Adapter, policy: RetryPolicy, throttle: ProviderThrottle,
                 catalogue: Catalogue | None = None) -> None:
        self.adapter = adapter
        self.policy = policy
        self.throttle = throttle
        self.provider = throttle.provider
        self.catalogue = catalogue  #: where fallback deployments are found; None: no fallback
        self.embedding_batch_size = throttle.provider.embedding_batch_size
        self._renames = {m: s.upstream_model for m, s in self.provider.models.items()
                         if s.upstream_model and s.upstream_model != m}

    async def _call(self, endpoint: str, payload: bytes, body: dict[str, Any] | None = None) -> UpstreamResponse:
        """One upstream call under the provider's shared limits."""
        model, estimated = None, 0
        if self.throttle.active or self._renames:
            body = body if body is not None else orjson.loads(payload)
            model = body.get("model")
            estimated = admission_tokens(endpoint, body) if self.throttle.active else 0
            if model in self._renames:  # the provider knows the model by another name
                payload = orjson.dumps({**body, "model": self._renames[model]})
        await self.throttle.before(model, estimated)
        start = time.monotonic()
        try:
            resp = await self.adapter.post(endpoint, payload)
        except UpstreamError as exc:
            await self.throttle.after(model, time.monotonic() - start, estimated, None, (None, None),
                                      rate_limited=exc.status == 429)
            self.throttle.record_health(failed=isinstance(exc, RetryableUpstream) and exc.status != 429)
            raise
        self.throttle.record_health(failed=False)
        usage = usage_of(resp.json)
        await self.throttle.after(model, time.monotonic() - start, estimated, usage.input_tokens + usage.output_tokens,
                                  resp.header_limits, rate_limited=False)
        return resp

    def fallback(self, line: LeasedLine) -> tuple[str, bool] | None:
        """The deployment a failing line moves to, and whether that wraps around to the first one: the next
        provider serving its model that the batch may use, in catalogue order."""
        if self.catalogue is None:
            return None
        model = orjson.loads(line.body).get("model")
        names = [p.name for p in self.catalogue.deployments(model, line.endpoint)
                 if line.eligible is None or p.name in line.eligible]
        if self.provider.name not in names or len(names) < 2:
            return None
        at = names.index(self.provider.name)
        return names[(at + 1) % len(names)], at + 1 == len(names)

    async def run(self, lines: Sequence[LeasedLine]) -> list[Outcome]:
        singles, packs = self._plan(lines)
        single_outcomes, pack_outcomes = await asyncio.gather(
            asyncio.gather(*(self._single(line) for line in singles)),
            asyncio.gather(*(self._pack(pack) for pack in packs)),
        )
        return [*single_outcomes, *(o for outcomes in pack_outcomes for o in outcomes)]

    def _plan(self, lines: Sequence[LeasedLine]) -> tuple[list[LeasedLine], list[list[tuple[LeasedLine, Any]]]]:
        singles: list[LeasedLine] = []
        groups: dict[bytes, list[tuple[LeasedLine, Any]]] = defaultdict(list)
        for line in lines:
            body = orjson.loads(line.body) if line.endpoint == EMBEDDINGS else None
            inputs = _packable_inputs(body) if body is not None else None
            if body is None or inputs is None:
                singles.append(line)
                continue
            params = {k: v for k, v in body.items() if k != "input"}
            groups[orjson.dumps(params, option=orjson.OPT_SORT_KEYS)].append((line, (params, inputs)))
        packs: list[list[tuple[LeasedLine, Any]]] = []
        for members in groups.values():
            current: list[tuple[LeasedLine, Any]] = []
            size = 0
            for member in members:
                n = len(member[1][1])
                if current and size + n > self.embedding_batch_size:
                    packs.append(current)
                    current, size = [], 0
                current.append(member)
                size += n
            packs.append(current)
        return singles, packs

    def _skip_down_provider(self, line: LeasedLine) -> Outcome | None:
        """While the provider is down, a line with another deployment moves there without a call."""
        if not self.throttle.down or (move := self.fallback(line)) is None:
            return None
        return Outcome(line.id, line.batch_id, "retry", error_code="provider_unavailable",
                       error_message=f"{self.provider.name} is failing; moved to {move[0]}.", not_before=time.time(),
                       refund_attempt=True, move_to=move[0])

    async def _single(self, line: LeasedLine) -> Outcome:
        if (skipped := self._skip_down_provider(line)) is not None:
            return skipped
        try:
            resp = await self._call(line.endpoint, line.body.encode())
        except UpstreamError as exc:
            return self._failure(line, exc)
        except Exception as exc:  # our own trouble (a limiter's Redis, say): retry the line, never lose the chunk
            log.exception("line %s: call failed inside the broker", line.id)
            return self._failure(line, RetryableUpstream(f"Broker error before the call: {exc!r}",
                                                         code="broker_error"))
        return self._success(line, resp.status, resp.text, resp.request_id, usage_of(resp.json),
                             orjson.loads(line.body).get("model"))

    def _success(self, line: LeasedLine, status: int, body: str, request_id: str | None, usage: Usage,
                 model: str | None) -> Outcome:
        provider = self.provider
        share = provider.price_multiplier(model or "", time.time())  # inside an off-peak window: its price
        return Outcome(line.id, line.batch_id, "succeeded", status, body, request_id,
                       input_tokens=usage.input_tokens, output_tokens=usage.output_tokens,
                       cost_usd=line_cost(provider, model, usage) * share, provider=provider.name, model=model,
                       route=OFF_PEAK if share < 1.0 else REALTIME)

    async def _pack(self, pack: list[tuple[LeasedLine, Any]]) -> list[Outcome]:
        if len(pack) == 1 or self.throttle.down:
            return list(await asyncio.gather(*(self._single(line) for line, _ in pack)))
        params, _ = pack[0][1]
        flat = [text for _, (_, inputs) in pack for text in inputs]
        try:
            body = {**params, "input": flat}
            resp = await self._call(EMBEDDINGS, orjson.dumps(body), body)
            return [self._success(line, resp.status, text, resp.request_id, usage, params.get("model"))
                    for line, text, usage in _split_embeddings(pack, resp)]
        except TerminalUpstream:  # one bad input fails the whole call: run them one by one to isolate it
            return list(await asyncio.gather(*(self._single(line) for line, _ in pack)))
        except UpstreamError as exc:
            return [self._failure(line, exc) for line, _ in pack]
        except Exception as exc:  # our own trouble: retry the lines, never lose the chunk
            log.exception("packed call failed inside the broker")
            broker_error = RetryableUpstream(f"Broker error before the call: {exc!r}", code="broker_error")
            return [self._failure(line, broker_error) for line, _ in pack]

    def _failure(self, line: LeasedLine, exc: UpstreamError) -> Outcome:
        now = time.time()
        # a 429 that says when to come back was refused unprocessed: the deadline bounds it, not the attempts
        refused = isinstance(exc, RetryableUpstream) and exc.status == 429 and exc.delay is not None
        if isinstance(exc, RetryableUpstream) and (refused or line.attempts < self.policy.max_attempts):
            # down or over its limit: the next deployment takes the line at once (after a backoff on wrapping)
            move = self.fallback(line) if exc.code != "broker_error" else None
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


def _split_embeddings(pack: list[tuple[LeasedLine, Any]],
                      resp: UpstreamResponse) -> list[tuple[LeasedLine, str, Usage]]:
    """Give each line its own embeddings response; usage is shared out by input length."""
    data = sorted(resp.json.get("data") or [], key=lambda d: d.get("index", 0))
    sizes = [len(inputs) for _, (_, inputs) in pack]
    if len(data) != sum(sizes):
        raise RetryableUpstream("Upstream returned a different number of embeddings than inputs",
                                code="upstream_invalid_response", status=resp.status)
    weights = [sum(len(t) for t in inputs) for _, (_, inputs) in pack]
    total_tokens = usage_of(resp.json).input_tokens
    outcomes: list[tuple[LeasedLine, str, Usage]] = []
    offset = given = 0
    for n, ((line, _), size) in enumerate(zip(pack, sizes, strict=True)):
        items = [{**item, "index": i} for i, item in enumerate(data[offset:offset + size])]
        offset += size
        tokens = total_tokens - given if n == len(pack) - 1 else total_tokens * weights[n] // sum(weights)
        given += tokens
        body = {"object": "list", "data": items, "model": resp.json.get("model"),
                "usage": {"prompt_tokens": tokens, "total_tokens": tokens}}
        outcomes.append((line, orjson.dumps(body).decode(), Usage(input_tokens=tokens)))
    return outcomes
