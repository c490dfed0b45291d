"""Usage and cost roll-ups, updated as lines end: per project, UTC day, provider, model and route; and per API key
(the key that created the batch), day and model."""

import datetime as dt
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, text
from sqlmodel import Session, col, select

from broker.driver_sql import DriverSQL
from broker.tables import UsageDaily, UsageKeyDaily

#: (provider, model, route, input tokens, output tokens, cost) of one ended call
Call = tuple[str | None, str | None, str, int, int, float]


def month_start(at: float) -> str:
    """The first day (UTC) of the month holding ``at``, as usage_daily spells days."""
    return dt.datetime.fromtimestamp(at, dt.UTC).date().replace(day=1).isoformat()


#: whom a batch's calls are billed to: its project, and the API key that created it (None: none recorded)
Owner = tuple[str, str | None]

_ADD_PROJECT_USAGE = DriverSQL(
    "INSERT INTO usage_daily (project_id, day, provider, model, route, requests, input_tokens, "
    "output_tokens, cost_usd) VALUES (:project, :day, :provider, :model, :route, :n, :it, :ot, :cost) "
    "ON CONFLICT (project_id, day, provider, model, route) DO UPDATE SET "
    "requests = usage_daily.requests + excluded.requests, "
    "input_tokens = usage_daily.input_tokens + excluded.input_tokens, "
    "output_tokens = usage_daily.output_tokens + excluded.output_tokens, "
    "cost_usd = usage_daily.cost_usd + excluded.cost_usd")
_ADD_KEY_USAGE = DriverSQL(
    "INSERT INTO usage_key_daily (api_key_id, day, model, project_id, requests, input_tokens, "
    "output_tokens, cost_usd) VALUES (:key, :day, :model, :project, :n, :it, :ot, :cost) "
    "ON CONFLICT (api_key_id, day, model) DO UPDATE "
    "SET requests = usage_key_daily.requests + excluded.requests, "
    "input_tokens = usage_key_daily.input_tokens + excluded.input_tokens, "
    "output_tokens = usage_key_daily.output_tokens + excluded.output_tokens, "
    "cost_usd = usage_key_daily.cost_usd + excluded.cost_usd")


def add_usage(conn: Connection, calls: Sequence[tuple[Owner, Call]]) -> None:
    """Add ended calls, ``(owner, call)`` (batch lines' and interactive calls'), to their project's and key's daily
    roll-ups, in the caller's transaction.

    Calls are summed per roll-up row first, and rows are written in key order: two stores ending lines of the
    same project lock its rows in the same order, so they never wait on each other in a cycle.
    """
    day = dt.datetime.now(dt.UTC).date().isoformat()
    per_project: dict[tuple[str, str, str, str], list[float]] = defaultdict(lambda: [0, 0, 0, 0.0])
    per_key: dict[tuple[str, str, str], list[float]] = defaultdict(lambda: [0, 0, 0, 0.0])
    for (project_id, api_key_id), (provider, model, route, tokens_in, tokens_out, cost) in calls:
        rows = [per_project[(project_id, provider or "", model or "", route)]]
        if api_key_id is not None:
            rows.append(per_key[(api_key_id, model or "", project_id)])
        for t in rows:
            t[0] += 1
            t[1] += tokens_in
            t[2] += tokens_out
            t[3] += cost
    if per_project:
        _ADD_PROJECT_USAGE.run_many(
            conn, [{"project": project, "day": day, "provider": p, "model": m, "route": r, "n": int(t[0]),
                    "it": int(t[1]), "ot": int(t[2]), "cost": t[3]}
                   for (project, p, m, r), t in sorted(per_project.items())],
        )
    if per_key:
        _ADD_KEY_USAGE.run_many(
            conn, [{"key": key, "day": day, "model": m, "project": project, "n": int(t[0]), "it": int(t[1]),
                    "ot": int(t[2]), "cost": t[3]} for (key, m, project), t in sorted(per_key.items())],
        )


def usage_rows(session: Session, project_id: str | None, start: str | None, end: str | None) -> list[UsageDaily]:
    """The project's daily rows (every project's when ``project_id`` is None) between two days, included."""
    query = select(UsageDaily)
    if project_id is not None:
        query = query.where(col(UsageDaily.project_id) == project_id)
    if start:
        query = query.where(col(UsageDaily.day) >= start)
    if end:
        query = query.where(col(UsageDaily.day) <= end)
    return list(session.exec(query.order_by(col(UsageDaily.day), col(UsageDaily.provider), col(UsageDaily.model))))


TOTALS = ("model", "provider", "route", "project_id")  #: usage_daily columns the usage report can total by, per day


def usage_totals(session: Session, project_id: str | None, start: str | None, end: str | None,
                 by: str) -> list[dict[str, Any]]:
    """Usage per day and one of TOTALS, added up in SQL: a chart's worth of rows however many projects there are."""
    if by not in TOTALS:
        raise ValueError(by)
    clauses = [clause for clause, value in (("project_id = :p", project_id), ("day >= :start", start),
                                            ("day <= :end", end)) if value is not None]
    where = f" WHERE {' AND '.join(clauses)}" if clauses else ""
    rows = session.connection().execute(
        text(f"SELECT day, {by}, SUM(requests), SUM(input_tokens), SUM(output_tokens), SUM(cost_usd) "
             f"FROM usage_daily{where} GROUP BY day, {by} ORDER BY day, {by}"),
        {"p": project_id, "start": start, "end": end},
    )
    return [{"day": day, by: value, "requests": int(n), "input_tokens": int(i), "output_tokens": int(o),
             "cost_usd": float(c)} for day, value, n, i, o, c in rows]


def usage_rows_by_key(session: Session, project_id: str | None, start: str | None,
                      end: str | None) -> list[UsageKeyDaily]:
    query = select(UsageKeyDaily)
    if project_id is not None:
        query = query.where(col(UsageKeyDaily.project_id) == project_id)
    if start:
        query = query.where(col(UsageKeyDaily.day) >= start)
    if end:
        query = query.where(col(UsageKeyDaily.day) <= end)
    return list(session.exec(query.order_by(col(UsageKeyDaily.day), col(UsageKeyDaily.api_key_id),
                                            col(UsageKeyDaily.model))))
