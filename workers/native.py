"""Running a provider's native batch route: submit waiting lines, poll remote batches, collect their results.

One call of :func:`sync_provider` does what is due now for one provider (the planner asks for it each tick while
there is native work). SQL keeps every step (broker/remote_batches.py), so a worker that dies mid-way leaves work
another worker picks up.
"""

import asyncio
import logging
import time
from typing import Any

import orjson
from sqlalchemy import Engine

from broker import metrics
from broker.catalogue import ProviderConfig
from broker.errors import UpstreamError
from broker.pricing import Usage, line_cost
from broker.remote_batches import (
    DuePoll,
    claim_polls,
    claim_submission,
    finish,
    mark_submitted,
    open_lines,
    polled,
    recover_lost_submissions,
    submission_failed,
)
from broker.results import Outcome
from broker.routing import NATIVE_BATCH
from providers.base import LineResult, NativeBatchApi

log = logging.getLogger(__name__)
NOT_REPORTED = "not_reported"  #: error code of a line the remote batch ended without mentioning
#: lines the remote batch never ran (it expired, or we cancelled it as late): they run in real time; if their own
#: batch was cancelled, the planner closes them instead
UNRUN = frozenset({"batch_expired", "batch_cancelled"})


async def sync_provider(engine: Engine, provider: ProviderConfig, api: NativeBatchApi) -> None:
    """Submit every waiting submission, then poll (and collect) every remote batch that is due."""
    assert provider.native_batch is not None
    await asyncio.to_thread(recover_lost_submissions, engine, provider.name, time.time())
    while (submission := await asyncio.to_thread(claim_submission, engine, provider, time.time())) is not None:
        if submission.lines:
            await _submit(engine, provider, api, submission.id, submission.batch_id, submission.endpoint,
                          submission.lines)
    for due in await asyncio.to_thread(claim_polls, engine, provider.name, time.time()):
        await _poll(engine, provider, api, due)


async def _submit(engine: Engine, provider: ProviderConfig, api: NativeBatchApi, submission_id: str, batch_id: str,
                  endpoint: str, lines: list[tuple[int, str, str]]) -> None:
    requests = [(custom_id, endpoint, _upstream_body(provider, body)) for _, custom_id, body in lines]
    try:
        remote_id = await api.submit(requests, endpoint, metadata={"broker_batch_id": batch_id,
                                                                   "broker_submission_id": submission_id})
    except (UpstreamError, ValueError) as exc:
        log.warning("provider %s refused a native batch of %d lines of %s (%s); they run in real time",
                    provider.name, len(lines), batch_id, exc)
        await asyncio.to_thread(submission_failed, engine, submission_id, str(exc))
        return
    assert provider.native_batch is not None
    await asyncio.to_thread(mark_submitted, engine, submission_id, remote_id, provider.native_batch.poll_seconds)
    log.info("batch %s: %d lines sent to %s's batch API as %s", batch_id, len(lines), provider.name, remote_id)


async def _poll(engine: Engine, provider: ProviderConfig, api: NativeBatchApi, due: DuePoll) -> None:
    assert provider.native_batch is not None
    cancel_requested = due.cancel_requested
    try:
        remote = await api.poll(due.remote_id)
        if not remote.terminal and due.cancel and not cancel_requested:
            log.info("cancelling %s's remote batch %s (late, or its batch stopped)", provider.name, due.remote_id)
            remote, cancel_requested = await api.cancel(due.remote_id), True
        if not remote.terminal:
            await asyncio.to_thread(polled, engine, due.id, remote.status,
                                    time.time() + provider.native_batch.poll_seconds, cancel_requested)
            return
        results = await api.results(remote)
    except UpstreamError as exc:
        log.warning("polling %s's remote batch %s failed: %s", provider.name, due.remote_id, exc)
        await asyncio.to_thread(polled, engine, due.id, None, time.time() + provider.native_batch.poll_seconds,
                                cancel_requested, str(exc))
        return
    lines = await asyncio.to_thread(open_lines, engine, due.id)
    outcomes = [_outcome(provider, due.batch_id, line_id, body, results.get(custom_id))
                for line_id, custom_id, body in lines]
    await asyncio.to_thread(finish, engine, due.id, remote.status, outcomes)
    for o in outcomes:
        if o.status == "succeeded":
            metrics.record_usage(provider.name, o.model, NATIVE_BATCH, o.input_tokens, o.output_tokens, o.cost_usd)
    rerun = sum(o.status == "retry" for o in outcomes)
    log.info("%s's remote batch %s %s: %d lines back, %d to run in real time", provider.name, due.remote_id,
             remote.status, len(outcomes) - rerun, rerun)


def _upstream_body(provider: ProviderConfig, body: str) -> dict[str, Any]:
    parsed: dict[str, Any] = orjson.loads(body)
    model = parsed.get("model")
    if isinstance(model, str) and provider.upstream_name(model) != model:
        parsed["model"] = provider.upstream_name(model)
    return parsed


def _outcome(provider: ProviderConfig, batch_id: str, line_id: int, body: str, result: LineResult | None) -> Outcome:
    """A remote line's result as the line's outcome; unfinished or retryable lines go back to real time."""
    if result is None or result.retryable or result.error_code in UNRUN:
        code = NOT_REPORTED if result is None else result.error_code or "upstream_http_error"
        message = "The provider's batch ended without this request's result; it runs in real time." \
            if result is None else result.error_message or f"Upstream answered HTTP {result.status_code}"
        return Outcome(line_id, batch_id, "retry", error_code=code, error_message=message, not_before=0.0)
    if result.succeeded:
        model = orjson.loads(body).get("model")
        usage = Usage(result.input_tokens, result.output_tokens)
        cost = line_cost(provider, model, usage, provider.batch_discount(model) or 0.0)
        return Outcome(line_id, batch_id, "succeeded", result.status_code, result.body, result.request_id,
                       input_tokens=usage.input_tokens, output_tokens=usage.output_tokens, cost_usd=cost,
                       provider=provider.name, model=model, route=NATIVE_BATCH)
    if result.status_code is not None:
        return Outcome(line_id, batch_id, "failed", result.status_code, result.body, result.request_id)
    return Outcome(line_id, batch_id, "failed", error_code=result.error_code, error_message=result.error_message)
