"""``/v1/models`` from the provider catalogue, and ``/healthz``."""

from fastapi import APIRouter
from sqlalchemy import text

from api.context import ApiContext
from api.deps import ContextDep, ProjectDep, SessionDep
from broker.errors import NotFound
from schemas.models import Model, ModelList, ModelPricing

router = APIRouter(tags=["models"])
CATALOGUE_CREATED = 1_700_000_000  #: models have no creation time of their own here


def _model(ctx: ApiContext, name: str) -> Model:
    provider = ctx.catalogue.provider_for(name)
    price = provider.models[name]
    return Model(id=name, created=CATALOGUE_CREATED, owned_by=provider.name,
                 pricing=ModelPricing(input=price.input, output=price.output))


@router.get("/v1/models", response_model=ModelList)
def list_models(ctx: ContextDep, _: ProjectDep) -> ModelList:
    return ModelList(data=[_model(ctx, name) for name in ctx.catalogue.model_names()])


@router.get("/v1/models/{model_id}", response_model=Model)
def retrieve_model(model_id: str, ctx: ContextDep, _: ProjectDep) -> Model:
    if model_id not in ctx.catalogue.model_names():
        raise NotFound(f"The model '{model_id}' does not exist", param="model", code="model_not_found")
    return _model(ctx, model_id)


@router.get("/healthz")
def healthz(session: SessionDep) -> dict[str, str]:
    session.connection().execute(text("SELECT 1"))
    return {"status": "ok"}
