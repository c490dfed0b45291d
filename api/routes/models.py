"""``/v1/models`` from the provider catalogue, and ``/healthz``."""

from fastapi import APIRouter
from sqlalchemy import text

from api.deps import ContextDep, ProjectDep, SessionDep
from broker.errors import NotFound
from schemas.models import Model, ModelList

router = APIRouter(tags=["models"])
CATALOGUE_CREATED = 1_700_000_000  #: models have no creation time of their own here


@router.get("/v1/models", response_model=ModelList)
def list_models(ctx: ContextDep, _: ProjectDep) -> ModelList:
    return ModelList(data=[Model(id=name, created=CATALOGUE_CREATED, owned_by=ctx.catalogue.provider_for(name).name)
                           for name in ctx.catalogue.model_names()])


@router.get("/v1/models/{model_id}", response_model=Model)
def retrieve_model(model_id: str, ctx: ContextDep, _: ProjectDep) -> Model:
    if model_id not in ctx.catalogue.model_names():
        raise NotFound(f"The model '{model_id}' does not exist", param="model", code="model_not_found")
    return Model(id=model_id, created=CATALOGUE_CREATED, owned_by=ctx.catalogue.provider_for(model_id).name)


@router.get("/healthz")
def healthz(session: SessionDep) -> dict[str, str]:
    session.connection().execute(text("SELECT 1"))
    return {"status": "ok"}
