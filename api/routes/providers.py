"""``GET /v1/providers`` (extension): limits configured and in force, load, 429s and latency per provider."""

import time
from typing import Annotated

from fastapi import APIRouter, Query
from sqlalchemy import text

from api.deps import ContextDep, ProjectDep, SessionDep
from api.openapi import errors
from broker.catalogue import ProviderConfig
from broker.dispatch import calls_in_flight
from broker.errors import NotFound
from broker.gateway import INTERACTIVE_REPORTER
from broker.provider_state import HISTORY_SECONDS, current, history
from broker.tables import ProviderStateRow
from schemas.providers import (
    LatencyMs,
    Provider,
    ProviderHistory,
    ProviderLimits,
    ProviderList,
    ProviderMinute,
    Traffic,
)

router = APIRouter(tags=["providers"])


def _provider(config: ProviderConfig, rows: list[ProviderStateRow], in_flight: int, native: int) -> Provider:
    """``rows``: workers' reports (batch lines) and API processes' (interactive calls, INTERACTIVE_REPORTER)."""
    gateway = [r for r in rows if r.worker_id.startswith(INTERACTIVE_REPORTER)]
    workers = [r for r in rows if not r.worker_id.startswith(INTERACTIVE_REPORTER)]
    interactive = Traffic(in_flight=sum(r.in_flight for r in gateway), calls_last_minute=sum(r.calls for r in gateway))
    batch = Traffic(in_flight=in_flight, calls_last_minute=sum(r.calls for r in workers))
    rpm = min((r.rpm_in_force for r in rows if r.rpm_in_force is not None), default=config.rpm)
    tpm = min((r.tpm_in_force for r in rows if r.tpm_in_force is not None), default=config.tpm)
    p50s = [(r.p50_ms, r.calls) for r in rows if r.p50_ms is not None]
    p50 = sum(p * n for p, n in p50s) / max(1, sum(n for _, n in p50s)) if p50s else None
    p95 = max((r.p95_ms for r in rows if r.p95_ms is not None), default=None)
    return Provider(
        id=config.name, kind=config.kind, models=sorted(config.models), regions=config.regions,
        configured=ProviderLimits(max_concurrency=config.max_concurrency, rpm=config.rpm, tpm=config.tpm),
        in_force=ProviderLimits(max_concurrency=config.max_concurrency, rpm=rpm, tpm=tpm),
        in_flight=in_flight + interactive.in_flight,
        calls_last_minute=batch.calls_last_minute + interactive.calls_last_minute,
        rate_limited_last_minute=sum(r.rate_limited for r in rows),
        latency_ms=LatencyMs(p50=p50, p95=p95), workers=len(workers), interactive=interactive, batch=batch,
        circuit_open=any(r.circuit_open for r in rows), native_batches_in_flight=native,
    )


@router.get("/v1/providers", response_model=ProviderList)
def list_providers(ctx: ContextDep, _: ProjectDep, session: SessionDep) -> ProviderList:
    states = current(session)
    conn, now = session.connection(), time.time()
    unfinished = text("SELECT provider, COUNT(*) FROM remote_batch WHERE status <> 'ended' GROUP BY provider")
    native: dict[str, int] = {provider: int(n) for provider, n in conn.execute(unfinished)}
    return ProviderList(data=[
        _provider(p, [s for s in states if s.provider == p.name], calls_in_flight(conn, p, now), native.get(p.name, 0))
        for p in ctx.core.catalogue.providers.values()
    ])


@router.get("/v1/providers/{provider_id}/history", response_model=ProviderHistory, responses=errors(404))
def provider_history(provider_id: str, ctx: ContextDep, _: ProjectDep, session: SessionDep,
                     minutes: Annotated[int, Query(ge=1, le=HISTORY_SECONDS // 60)] = 60) -> ProviderHistory:
    """Extension: the provider's calls, 429s, calls in flight and latency p50/p95 per minute, the last hour at most."""
    if provider_id not in ctx.core.catalogue.providers:
        raise NotFound(f"No such provider: {provider_id}", param="provider_id")
    since = (int(time.time()) // 60 - minutes + 1) * 60
    return ProviderHistory(provider=provider_id, data=[
        ProviderMinute(minute=m.minute, in_flight=m.in_flight, calls=m.calls, rate_limited=m.rate_limited,
                       p50_ms=m.p50_ms, p95_ms=m.p95_ms) for m in history(session, provider_id, since)])
