"""``GET /v1/batches/{id}/failures`` (extension): a batch's failed lines grouped by error code, live while it runs."""

from fastapi import APIRouter

from api.deps import ProjectDep, SessionDep
from broker.batches import get_batch
from broker.failures import failure_groups
from schemas.failures import FailureGroups

router = APIRouter(prefix="/v1/batches", tags=["batches"])


@router.get("/{batch_id}/failures", response_model=FailureGroups)
def batch_failures(batch_id: str, project_id: ProjectDep, session: SessionDep) -> FailureGroups:
    """Failed lines by error code (ours, else the upstream's): how many, and the first one's message."""
    return failure_groups(session, get_batch(session, project_id, batch_id).id)
