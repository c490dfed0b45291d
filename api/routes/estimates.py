"""``POST /v1/files/{id}/estimate`` (extension): what a batch file will cost, per model and route."""

from fastapi import APIRouter

from api.deps import ContextDep, ProjectDep, SessionDep
from broker.estimates import estimate_file
from broker.files import get_file
from schemas.estimates import FileEstimate, ModelEstimate, RouteCost

router = APIRouter(tags=["files"])


@router.post("/v1/files/{file_id}/estimate", response_model=FileEstimate)
def estimate(file_id: str, ctx: ContextDep, project_id: ProjectDep, session: SessionDep) -> FileEstimate:
    row = get_file(session, project_id, file_id)
    models = [
        ModelEstimate(model=e.model, lines=e.lines, input_tokens=e.input_tokens, output_tokens=e.output_tokens,
                      routes=sorted((RouteCost(provider=p, route=r, cost_usd=round(c, 8)) for p, r, c in e.routes),
                                    key=lambda rc: rc.cost_usd))
        for e in estimate_file(session, ctx.core.catalogue, ctx.core.store.lines(row.id), project_id)
    ]
    return FileEstimate(
        file_id=row.id, lines=sum(m.lines for m in models), input_tokens=sum(m.input_tokens for m in models),
        output_tokens=sum(m.output_tokens for m in models),
        cost_usd=round(sum(m.routes[0].cost_usd for m in models if m.routes), 8), models=models,
    )
