"""``GET /v1/providers`` (extension): limits configured and in force, load, 429s and latency per provider."""

import time

from fastapi import APIRouter

from api.deps import ContextDep, ProjectDep, SessionDep
from broker.catalogue import ProviderConfig
from broker.dispatch import calls_in_flight
from broker.gateway import INTERACTIVE_REPORTER
from broker.provider_state import current
from broker.tables import ProviderStateRow
from schemas.providers import LatencyMs, Provider, ProviderLimits, ProviderList, Traffic

router = APIRouter(tags=["providers"])


def _provider(config: ProviderConfig, rows: list[ProviderStateRow], in_flight: int) -> Provider:
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
    )


@router.get("/v1/providers", response_model=ProviderList)
def list_providers(ctx: ContextDep, _: ProjectDep, session: SessionDep) -> ProviderList:
    states = current(session)
    conn, now = session.connection(), time.time()
    return ProviderList(data=[
        _provider(p, [s for s in states if s.provider == p.name], calls_in_flight(conn, p, now))
        for p in ctx.core.catalogue.providers.values()
    ])
