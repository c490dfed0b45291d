"""The gateway's rules for one interactive call: who may call which model where, within what budget, at what rank.

:func:`deployments_for` is the one place that resolves a caller's model to the deployments it may use (the access
rule lives there); :func:`plan_call` adds the project's budget, regions and the call's priority.
"""

from dataclasses import dataclass
from typing import Any

from sqlmodel import Session

from broker.capacity import FLEX_RANK_OFFSET
from broker.catalogue import Catalogue, ProviderConfig
from broker.errors import InvalidRequest, NotFound, QuotaExceeded
from broker.projects import month_to_date_cost, regions_of
from broker.routing import eligible
from broker.tables import Project
from schemas.batches import PRIORITY_CLASSES

INTERACTIVE = "interactive"  #: the usage roll-up's route for gateway calls
DEFAULT_RANK = PRIORITY_CLASSES["normal"]
EXTENSIONS = ("constraints", "priority")  #: our fields in a request body, never sent upstream
DEFAULT_MODERATION_MODEL = "omni-moderation-latest"  #: OpenAI's default when a moderation request names none


@dataclass(frozen=True, slots=True)
class CallPlan:
    project_id: str
    model: str
    deployments: list[ProviderConfig]  #: in fallback order
    rank: int  #: lower is admitted first (broker/capacity.py)
    body: dict[str, Any]  #: what goes upstream (our extensions removed)


def deployments_for(catalogue: Catalogue, project: Project, model: str, endpoint: str,
                    constraints: dict[str, Any]) -> list[ProviderConfig]:
    """The deployments of ``model`` at ``endpoint`` the project may use, in fallback order; 404 model_not_found
    (as OpenAI answers) when there are none. Today's access rule: the model is in the catalogue."""
    allowed = catalogue.deployments(model, endpoint)
    if not allowed:
        raise NotFound(f"The model `{model}` does not exist or you do not have access to it.", param="model",
                       code="model_not_found")
    regions = constraints.get("regions") or regions_of(project)
    names = eligible(catalogue, regions, constraints.get("providers"))
    within = [p for p in allowed if names is None or p.name in names]
    if not within:
        raise InvalidRequest(f"No deployment of `{model}` satisfies the constraints (served by "
                             f"{', '.join(p.name for p in allowed)}).", param="constraints",
                             code="no_eligible_deployment")
    return within


def _rank(body: dict[str, Any]) -> int:
    priority = body.get("priority", DEFAULT_RANK)
    if isinstance(priority, str) and priority in PRIORITY_CLASSES:
        priority = PRIORITY_CLASSES[priority]
    if not isinstance(priority, int) or isinstance(priority, bool):
        raise InvalidRequest(f"priority must be one of {', '.join(PRIORITY_CLASSES)} or an integer.",
                             param="priority")
    return priority + (FLEX_RANK_OFFSET if body.get("service_tier") == "flex" else 0)


def _constraints(body: dict[str, Any]) -> dict[str, Any]:
    constraints = body.get("constraints") or {}
    ok = isinstance(constraints, dict) and all(
        isinstance(constraints.get(k) or [], list) for k in ("regions", "providers"))
    if not ok:
        raise InvalidRequest("constraints must be an object with lists 'regions' and 'providers'.",
                             param="constraints")
    return constraints


def plan_call(session: Session, catalogue: Catalogue, project_id: str, endpoint: str,
              body: dict[str, Any]) -> CallPlan:
    """Check the call against the project's rules and say where it may go; raises the API error to answer."""
    model = body.get("model", DEFAULT_MODERATION_MODEL if endpoint == "/v1/moderations" else None)
    if not isinstance(model, str) or not model:
        raise InvalidRequest("you must provide a model parameter", param="model")
    project = session.get(Project, project_id)
    assert project is not None, "a key's project exists"
    deployments = deployments_for(catalogue, project, model, endpoint, _constraints(body))
    budget = project.monthly_budget_usd
    if budget is not None and month_to_date_cost(session, project_id) >= budget:
        raise QuotaExceeded(f"You exceeded your current quota: project '{project.name}' has spent its monthly "
                            f"budget of ${budget:.2f}.", code="insufficient_quota")
    upstream = {k: v for k, v in body.items() if k not in EXTENSIONS}
    upstream.setdefault("model", model)
    return CallPlan(project_id, model, deployments, _rank(body), upstream)
