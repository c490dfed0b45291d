"""``/v1/models`` from the provider catalogue (only the models the caller's project may use), and ``/healthz``."""

from fastapi import APIRouter
from sqlalchemy import text

from api.context import ApiContext
from api.deps import ContextDep, ProjectDep, SessionDep
from broker.catalogue import ProviderConfig
from broker.errors import NotFound
from broker.model_access import may_use
from broker.tables import Project
from schemas.models import Deployment, Model, ModelList, ModelPricing, OffPeak

router = APIRouter(tags=["models"])
CATALOGUE_CREATED = 1_700_000_000  #: models have no creation time of their own here


def _pricing(provider: ProviderConfig, name: str) -> ModelPricing:
    price = provider.models[name]
    return ModelPricing(input=price.input, output=price.output, cached_input=price.cached_input)


def _model(ctx: ApiContext, name: str) -> Model:
    deployments = ctx.core.catalogue.deployments(name)
    first = deployments[0]
    return Model(id=name, created=CATALOGUE_CREATED, owned_by=first.name, pricing=_pricing(first, name),
                 deployments=[Deployment(provider=p.name, regions=p.regions, pricing=_pricing(p, name),
                                         batch_discount=p.batch_discount(name),
                                         off_peak=[OffPeak.model_validate(w.model_dump())
                                                   for w in p.off_peak_windows(name)])
                              for p in deployments])


@router.get("/v1/models", response_model=ModelList)
def list_models(ctx: ContextDep, project_id: ProjectDep, session: SessionDep) -> ModelList:
    project = session.get(Project, project_id)
    return ModelList(data=[_model(ctx, name) for name in ctx.core.catalogue.model_names() if may_use(project, name)])


@router.get("/v1/models/{model_id}", response_model=Model)
def retrieve_model(model_id: str, ctx: ContextDep, project_id: ProjectDep, session: SessionDep) -> Model:
    if model_id not in ctx.core.catalogue.model_names() or not may_use(session.get(Project, project_id), model_id):
        raise NotFound(f"The model '{model_id}' does not exist", param="model", code="model_not_found")
    return _model(ctx, model_id)


@router.get("/healthz")
def healthz(session: SessionDep) -> dict[str, str]:
    session.connection().execute(text("SELECT 1"))
    return {"status": "ok"}
