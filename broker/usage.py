"""Usage and cost roll-ups, updated as lines end: per project, UTC day, provider, model and route; and per API key
(the key that created the batch), day and model."""

import datetime as dt
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, text
from sqlmodel import Session, col, select

from broker.tables import UsageDaily, UsageKeyDaily

#: (provider, model, route, input tokens, output tokens, cost) of one ended call
Call = tuple[str | None, str | None, str, int, int, float]


def month_start(at: float) -> str:
    """The first day (UTC) of the month holding ``at``, as usage_daily spells days."""
    return dt.datetime.fromtimestamp(at, dt.UTC).date().replace(day=1).isoformat()


def add_usage(conn: Connection, batch_id: str, calls: Sequence[Call]) -> None:
    """Add ended calls of one batch to its project's (and its key's) daily roll-up, in the caller's transaction."""
    totals: dict[tuple[str, str, str], list[float]] = defaultdict(lambda: [0, 0, 0, 0.0])
    for provider, model, route, tokens_in, tokens_out, cost in calls:
        t = totals[(provider or "", model or "", route)]
        t[0] += 1
        t[1] += tokens_in
        t[2] += tokens_out
        t[3] += cost
    if not totals:
        return
    day = dt.datetime.now(dt.UTC).date().isoformat()
    conn.execute(
        text("INSERT INTO usage_daily (project_id, day, provider, model, route, requests, input_tokens, "
             "output_tokens, cost_usd) SELECT project_id, :day, :provider, :model, :route, :n, :it, :ot, :cost "
             "FROM batch WHERE id = :b ON CONFLICT (project_id, day, provider, model, route) DO UPDATE SET "
             "requests = usage_daily.requests + excluded.requests, "
             "input_tokens = usage_daily.input_tokens + excluded.input_tokens, "
             "output_tokens = usage_daily.output_tokens + excluded.output_tokens, "
             "cost_usd = usage_daily.cost_usd + excluded.cost_usd"),
        [{"b": batch_id, "day": day, "provider": p, "model": m, "route": r, "n": int(t[0]), "it": int(t[1]),
          "ot": int(t[2]), "cost": t[3]} for (p, m, r), t in sorted(totals.items())],
    )
    by_model: dict[str, list[float]] = defaultdict(lambda: [0, 0, 0, 0.0])
    for (_, model, _), t in totals.items():
        by_model[model] = [a + b for a, b in zip(by_model[model], t, strict=True)]
    conn.execute(
        text("INSERT INTO usage_key_daily (api_key_id, day, model, project_id, requests, input_tokens, "
             "output_tokens, cost_usd) SELECT api_key_id, :day, :model, project_id, :n, :it, :ot, :cost "
             "FROM batch WHERE id = :b AND api_key_id IS NOT NULL ON CONFLICT (api_key_id, day, model) DO UPDATE "
             "SET requests = usage_key_daily.requests + excluded.requests, "
             "input_tokens = usage_key_daily.input_tokens + excluded.input_tokens, "
             "output_tokens = usage_key_daily.output_tokens + excluded.output_tokens, "
             "cost_usd = usage_key_daily.cost_usd + excluded.cost_usd"),
        [{"b": batch_id, "day": day, "model": m, "n": int(t[0]), "it": int(t[1]), "ot": int(t[2]), "cost": t[3]}
         for m, t in sorted(by_model.items())],
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


def add_project_usage(conn: Connection, project_id: str, calls: Sequence[Call]) -> None:
    """Add ended calls that belong to no batch (interactive ones) to the project's daily roll-up."""
    day = dt.datetime.now(dt.UTC).date().isoformat()
    conn.execute(
        text("INSERT INTO usage_daily (project_id, day, provider, model, route, requests, input_tokens, "
             "output_tokens, cost_usd) VALUES (:project, :day, :provider, :model, :route, 1, :it, :ot, :cost) "
             "ON CONFLICT (project_id, day, provider, model, route) DO UPDATE SET "
             "requests = usage_daily.requests + excluded.requests, "
             "input_tokens = usage_daily.input_tokens + excluded.input_tokens, "
             "output_tokens = usage_daily.output_tokens + excluded.output_tokens, "
             "cost_usd = usage_daily.cost_usd + excluded.cost_usd"),
        [{"project": project_id, "day": day, "provider": p or "", "model": m or "", "route": r, "it": i, "ot": o,
          "cost": c} for p, m, r, i, o, c in calls],
    )
