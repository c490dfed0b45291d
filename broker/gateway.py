"""The gateway's rules for one interactive call: who may call which model where, within what budget, at what rank.

:func:`deployments_for` is the one place that resolves a caller's model to the deployments it may use (the access
rule lives there); :func:`plan_call` adds the project's and the key's monthly budgets, the project's regions
(:class:`Policies`) and the call's priority.
"""

import time
from dataclasses import dataclass
from typing import Any

import orjson
from sqlalchemy import Engine, text

from broker.capacity import FLEX_RANK_OFFSET
from broker.catalogue import Catalogue, ProviderConfig
from broker.errors import InvalidRequest, NotFound, QuotaExceeded
from broker.model_access import permits
from broker.routing import eligible
from broker.usage import month_start
from schemas.batches import PRIORITY_CLASSES

DEFAULT_RANK = PRIORITY_CLASSES["normal"]
EXTENSIONS = ("constraints", "priority")  #: our fields in a request body, never sent upstream
DEFAULT_MODERATION_MODEL = "omni-moderation-latest"  #: OpenAI's default when a moderation request names none
INTERACTIVE_REPORTER = "interactive:"  #: provider_state rows of API processes (their calls) start with this
POLICY_TTL_SECONDS = 1.0  #: a project's budget, regions and spend are re-read this often per API process
REFRESH_AFTER = 0.75  #: share of the TTL past which a caller's policies are re-read ahead (:meth:`Policies.due`)


@dataclass(frozen=True, slots=True)
class CallPlan:
    project_id: str
    model: str
    deployments: list[ProviderConfig]  #: in fallback order
    rank: int  #: lower is admitted first (broker/capacity.py)
    body: dict[str, Any]  #: what goes upstream (our extensions removed)
    key_id: str | None = None  #: the API key that made the call (its usage and budget), None with auth off


def deployments_for(catalogue: Catalogue, model: str, endpoint: str, constraints: dict[str, Any],
                    policy: "Policy") -> list[ProviderConfig]:
    """The deployments of ``model`` at ``endpoint`` the caller may use, in fallback order; 404 model_not_found
    (as OpenAI answers) when there are none: a model the catalogue lacks, or one the project's model access
    (broker/model_access.py, the rule batches and /v1/models follow) does not permit."""
    permitted = permits(policy.models_allowed, list(policy.models_blocked), model)
    allowed = catalogue.deployments(model, endpoint) if permitted else []
    if not allowed:
        raise NotFound(f"The model `{model}` does not exist or you do not have access to it.", param="model",
                       code="model_not_found")
    names = eligible(catalogue, constraints.get("regions") or policy.regions, constraints.get("providers"))
    within = [p for p in allowed if names is None or p.name in names]
    if not within:
        raise InvalidRequest(f"No deployment of `{model}` satisfies the constraints (served by "
                             f"{', '.join(p.name for p in allowed)}).", param="constraints",
                             code="no_eligible_deployment")
    return within


@dataclass(frozen=True, slots=True)
class Policy:
    """What the gateway checks of a project on every call, as last read."""

    name: str
    monthly_budget_usd: float | None
    regions: list[str] | None
    spent_this_month: float
    read_at: float
    models_allowed: list[str] | None = None  #: None: every model (broker/model_access.py)
    models_blocked: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class KeyPolicy:
    """An API key's monthly budget and its spend this month, as last read."""

    name: str
    monthly_budget_usd: float | None
    spent_this_month: float
    read_at: float


class Policies:
    """Projects' and keys' policies, re-read at most every ``ttl`` seconds per process: a call costs no query when
    its project and key were read recently, so a budget just spent, or one just set, applies within ``ttl``. The
    gateway re-reads a steady caller's ahead of that, in the background (:meth:`due`, :meth:`refresh`)."""

    def __init__(self, engine: Engine, ttl: float = POLICY_TTL_SECONDS) -> None:
        self.engine, self.ttl = engine, ttl
        self._read: dict[str, Policy] = {}
        self._keys: dict[str, KeyPolicy] = {}

    def fresh(self, project_id: str, key_id: str | None = None) -> bool:
        """Whether :meth:`get` (and :meth:`key`) answer without a query."""
        return self._read_within(project_id, key_id, 1.0)

    def due(self, project_id: str, key_id: str | None = None) -> bool:
        """Whether the policies are past :data:`REFRESH_AFTER` of their TTL: :meth:`refresh` them now (off the
        calls' path), and a steady caller's calls never wait for the query."""
        return not self._read_within(project_id, key_id, REFRESH_AFTER)

    def _read_within(self, project_id: str, key_id: str | None, share: float) -> bool:
        """Whether the project's (and the key's) policy was read within ``share`` of the TTL."""
        return self._recent(self._read.get(project_id), share) and (
            key_id is None or self._recent(self._keys.get(key_id), share))

    def _recent(self, policy: Policy | KeyPolicy | None, share: float = 1.0) -> bool:
        return policy is not None and time.monotonic() - policy.read_at <= self.ttl * share

    def refresh(self, project_id: str, key_id: str | None = None) -> None:
        """Read the project's (and the key's) policy again now."""
        self._read[project_id] = self._read_project(project_id)
        if key_id is not None:
            self._keys[key_id] = self._read_key(key_id)

    def key(self, key_id: str) -> KeyPolicy:
        policy = self._keys.get(key_id)
        if policy is None or not self._recent(policy):
            policy = self._keys[key_id] = self._read_key(key_id)
        return policy

    def get(self, project_id: str) -> Policy:
        policy = self._read.get(project_id)
        if policy is None or not self._recent(policy):
            policy = self._read[project_id] = self._read_project(project_id)
        return policy

    def _read_key(self, key_id: str) -> KeyPolicy:
        now = time.monotonic()
        with self.engine.connect() as conn:
            row = conn.execute(
                text("SELECT name, monthly_budget_usd, (SELECT COALESCE(SUM(cost_usd), 0) FROM usage_key_daily "
                     "WHERE api_key_id = :k AND day >= :month) FROM api_key WHERE id = :k"),
                {"k": key_id, "month": month_start(time.time())}).one_or_none()
            conn.rollback()
        return KeyPolicy(row[0], row[1], float(row[2]), now) if row else KeyPolicy("", None, 0.0, now)

    def _read_project(self, project_id: str) -> Policy:
        now = time.monotonic()
        with self.engine.connect() as conn:
            row = conn.execute(
                text("SELECT name, monthly_budget_usd, regions_json, (SELECT COALESCE(SUM(cost_usd), 0) FROM "
                     "usage_daily WHERE project_id = :p AND day >= :month), models_allowed_json, "
                     "models_blocked_json FROM project WHERE id = :p"),
                {"p": project_id, "month": month_start(time.time())}).one()
            conn.rollback()
        regions = orjson.loads(row[2]) if row[2] else None
        return Policy(row[0], row[1], regions, float(row[3]), now, orjson.loads(row[4]) if row[4] else None,
                      tuple(orjson.loads(row[5]) if row[5] else ()))


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


def plan_call(policies: Policies, catalogue: Catalogue, project_id: str, endpoint: str,
              body: dict[str, Any], key_id: str | None = None) -> CallPlan:
    """Check the call against the rules of its project and of the key that made it, and say where it may go;
    raises the API error to answer."""
    model = body.get("model", DEFAULT_MODERATION_MODEL if endpoint == "/v1/moderations" else None)
    if not isinstance(model, str) or not model:
        raise InvalidRequest("you must provide a model parameter", param="model")
    policy = policies.get(project_id)
    deployments = deployments_for(catalogue, model, endpoint, _constraints(body), policy)
    budget = policy.monthly_budget_usd
    if budget is not None and policy.spent_this_month >= budget:
        raise QuotaExceeded(f"You exceeded your current quota: project '{policy.name}' has spent its monthly "
                            f"budget of ${budget:.2f}.", code="insufficient_quota")
    key = policies.key(key_id) if key_id is not None else None
    if key is not None and key.monthly_budget_usd is not None and key.spent_this_month >= key.monthly_budget_usd:
        raise QuotaExceeded(f"You exceeded your current quota: API key '{key.name}' has spent its monthly budget "
                            f"of ${key.monthly_budget_usd:.2f}.", code="insufficient_quota")
    upstream = {k: v for k, v in body.items() if k not in EXTENSIONS}
    upstream.setdefault("model", model)
    return CallPlan(project_id, model, deployments, _rank(body), upstream, key_id)
