"""``GET /metrics``: Prometheus text exposition of this process' counters and of the SQL gauges (broker/gauges.py).

Unauthenticated, like ``/healthz``: it names providers, models and counts, never a project, key or request.
"""

from fastapi import APIRouter, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from api.deps import ContextDep
from broker.gauges import SqlGauges
from broker.metrics import exposition

router = APIRouter(tags=["metrics"])


@router.get("/metrics", include_in_schema=False)
def metrics(ctx: ContextDep) -> Response:
    registry = exposition(SqlGauges(ctx.core.engine, ctx.core.catalogue), *ctx.collectors)
    return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)
