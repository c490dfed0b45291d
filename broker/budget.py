"""Budgets: every rule that stops a batch from spending, in one place.

Three budgets exist: a project's ``monthly_budget_usd`` (its spend this UTC month, from ``usage_daily``), the same
for the API key that created a batch (from ``usage_key_daily``), and a batch's ``max_cost_usd`` (its accounted
``cost_usd``, plus the expected cost of its lines out in native remote batches until they come back). Dispatch
leases nothing for a batch past any; native submissions are sized to what the batch's budget left pays for; the
planner ends a batch past any once its calls in flight are back.

The rules are SQL fragments that the queries of dispatch, native batches and finalize embed. Fragments that
mention ``:month`` need ``month_params(at)`` among the statement's parameters.
"""

import math
from typing import Any

import orjson
from sqlalchemy import Connection, text

from broker.usage import month_start

MAX_LINES_UNPRICED = 1_000_000  #: a model priced at zero: its budget never limits a native submission

#: SQL: projects whose spend this month (UTC) has reached their monthly budget
OVER_MONTHLY_BUDGET = (
    "SELECT p.id FROM project p WHERE p.monthly_budget_usd IS NOT NULL AND p.monthly_budget_usd <= "
    "(SELECT COALESCE(SUM(u.cost_usd), 0) FROM usage_daily u WHERE u.project_id = p.id AND u.day >= :month)"
)
#: SQL: API keys whose spend this month (UTC) has reached their monthly budget
OVER_KEY_BUDGET = (
    "SELECT k.id FROM api_key k WHERE k.monthly_budget_usd IS NOT NULL AND k.monthly_budget_usd <= "
    "(SELECT COALESCE(SUM(u.cost_usd), 0) FROM usage_key_daily u WHERE u.api_key_id = k.id AND u.day >= :month)"
)


def within_monthly(alias: str = "") -> str:
    """SQL, on a ``batch`` row (``alias.`` before its columns if given): neither its project nor its key is past
    a monthly budget."""
    return (f"({alias}project_id NOT IN ({OVER_MONTHLY_BUDGET}) "
            f"AND ({alias}api_key_id IS NULL OR {alias}api_key_id NOT IN ({OVER_KEY_BUDGET})))")


#: SQL, on a ``batch`` row: the expected cost of its lines out in remote (native) batches, held against its cap
COMMITTED_REMOTE = ("(SELECT COALESCE(SUM(r.estimated_cost_usd), 0) FROM remote_batch r "
                    "WHERE r.batch_id = batch.id AND r.status != 'ended')")
#: SQL, on a ``batch`` row: its spend and remote commitments leave room under its max_cost_usd
UNDER_CAP = f"(max_cost_usd IS NULL OR cost_usd + {COMMITTED_REMOTE} < max_cost_usd)"
#: SQL, on a ``batch`` row: the batch spent its max_cost_usd
OVER_CAP = "(max_cost_usd IS NOT NULL AND cost_usd >= max_cost_usd)"
#: SQL, on a ``batch`` row: the batch's project or key spent its monthly budget
OVER_MONTHLY = f"(NOT {within_monthly()})"
#: SQL, on a ``batch`` row: the batch takes no new work and ends once its calls in flight are back
WINDING_DOWN = f"(status = 'cancelling' OR (status = 'in_progress' AND ({OVER_CAP} OR {OVER_MONTHLY})))"


def month_params(at: float) -> dict[str, Any]:
    """The parameters the monthly budget rules need, for a statement run at ``at``."""
    return {"month": month_start(at)}


def committed_cost(conn: Connection, batch_id: str) -> float:
    """Expected cost of the batch's lines out in remote batches now."""
    return float(conn.execute(
        text(f"SELECT {COMMITTED_REMOTE} FROM batch WHERE id = :b"), {"b": batch_id},
    ).scalar() or 0.0)


def line_cost(plan_json: str | None, provider: str) -> float:
    """The highest expected line cost among the batch's models planned on ``provider``'s batch API."""
    plans = orjson.loads(plan_json) if plan_json else {}
    return max((p.get("line_cost_usd") or 0.0 for p in plans.values() if p.get("provider") == provider), default=0.0)


def affordable(budget_left: float, plan_json: str | None, provider: str) -> int:
    """How many of the batch's lines on ``provider``'s batch API ``budget_left`` pays for at their expected cost."""
    per_line = line_cost(plan_json, provider)
    if per_line <= 0:
        return MAX_LINES_UNPRICED if budget_left > 0 else 0
    return max(0, math.floor(budget_left / per_line))
