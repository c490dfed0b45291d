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
from typing import Any

import orjson

from broker.dispatch import LeasedLine
from broker.errors import RetryableUpstream, TerminalUpstream, UpstreamError
from broker.pricing import Usage, line_cost
from broker.results import Outcome
from broker.tokens import admission_tokens
from workers.providers.openai import OpenAICompatible, UpstreamResponse, usage_of
from workers.throttle import ProviderThrottle

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


class LineRunner:
    def __init__(self, adapter: OpenAICompatible, policy: RetryPolicy, throttle: ProviderThrottle) -> None:
        self.adapter = adapter
        self.policy = policy
        self.throttle = throttle
        self.embedding_batch_size = throttle.provider.embedding_batch_size

    async def _call(self, endpoint: str, payload: bytes, body: dict[str, Any] | None = None) -> UpstreamResponse:
        """One upstream call under the provider's shared limits."""
        model, estimated = None, 0
        if self.throttle.active:
            body = body if body is not None else orjson.loads(payload)
            model, estimated = body.get("model"), admission_tokens(endpoint, body)
        await self.throttle.before(model, estimated)
        start = time.monotonic()
        try:
            resp = await self.adapter.post(endpoint, payload)
        except UpstreamError as exc:
            await self.throttle.after(model, time.monotonic() - start, estimated, None, (None, None),
                                      rate_limited=exc.status == 429)
            raise
        usage = usage_of(resp.json)
        await self.throttle.after(model, time.monotonic() - start, estimated, usage.input_tokens + usage.output_tokens,
                                  resp.header_limits, rate_limited=False)
        return resp

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

    async def _single(self, line: LeasedLine) -> Outcome:
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
        provider = self.throttle.provider
        return Outcome(line.id, line.batch_id, "succeeded", status, body, request_id,
                       input_tokens=usage.input_tokens, output_tokens=usage.output_tokens,
                       cost_usd=line_cost(provider, model, usage), provider=provider.name, model=model)

    async def _pack(self, pack: list[tuple[LeasedLine, Any]]) -> list[Outcome]:
        if len(pack) == 1:
            return [await self._single(pack[0][0])]
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
            not_before = now + self.policy.delay(line.attempts, exc.delay)
            if line.expires_at is None or not_before < line.expires_at:
                return Outcome(line.id, line.batch_id, "retry", error_code=exc.code, error_message=exc.message,
                               not_before=not_before, refund_attempt=refused)
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
