"""``GET /v1/overview`` (extension): the dashboard's first page in one read."""

from fastapi import APIRouter

from api.deps import ScopeDep, SessionDep
from api.openapi import errors
from broker.overview import overview
from schemas.overview import Overview

router = APIRouter(tags=["overview"])


@router.get("/v1/overview", response_model=Overview, responses=errors(404))
def get_overview(scope: ScopeDep, session: SessionDep) -> Overview:
    """Lines/s now, running batches by status and those at risk, spend today and this month against the budget,
    and the last hour's failures by error code."""
    return overview(session, scope)
