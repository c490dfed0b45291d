"""The dashboard's overview, read from indexed columns only: lines ended lately, running batches, spend from the
daily roll-up, recent failures by code. ``project_id`` None means every project (admin keys)."""

import datetime as dt
import time
from typing import Any

from sqlalchemy import text
from sqlmodel import Session, col, func, select

from broker.batches import RUNNING, progress
from broker.projects import monthly_budget
from broker.tables import BatchRow
from broker.usage import month_start
from schemas.overview import AtRiskBatch, FailureCount, Overview

RATE_WINDOW_SECONDS = 60  #: lines/s now = lines ended in this many seconds, divided by it
FAILURE_WINDOW_SECONDS = 3600  #: "recent" failures
MAX_RUNNING_CHECKED = 500  #: running batches looked at for the at-risk list, oldest first


def _lines(project_id: str | None) -> tuple[str, dict[str, Any]]:
    """FROM clause of ended lines, joined to their batch only when one project is asked for. CROSS JOIN makes SQLite
    read the recent lines first (the finished_at index) and look their batches up, rather than every line of every
    batch of the project; PostgreSQL plans it as any inner join."""
    if project_id is None:
        return "FROM line", {}
    return "FROM line CROSS JOIN batch", {"p": project_id}


def overview(session: Session, project_id: str | None, at: float | None = None) -> Overview:
    t = at or time.time()
    conn = session.connection()
    source, params = _lines(project_id)
    scope = " AND batch.id = line.batch_id AND batch.project_id = :p" if project_id else ""
    ended = conn.execute(
        text(f"SELECT COUNT(*) {source} WHERE line.status IN ('succeeded', 'failed') "
             f"AND line.finished_at >= :since{scope}"), {**params, "since": t - RATE_WINDOW_SECONDS},
    ).scalar_one()
    failures = conn.execute(
        text(f"SELECT COALESCE(line.error_code, 'http_' || CAST(line.response_status AS VARCHAR)) AS code, COUNT(*) "
             f"{source} WHERE line.status = 'failed' AND line.finished_at >= :since{scope} "
             "GROUP BY code ORDER BY COUNT(*) DESC, code"), {**params, "since": t - FAILURE_WINDOW_SECONDS},
    ).all()
    running = select(BatchRow).where(col(BatchRow.status).in_(RUNNING))
    counts = select(BatchRow.status, func.count()).where(col(BatchRow.status).in_(RUNNING))
    if project_id:
        running = running.where(col(BatchRow.project_id) == project_id)
        counts = counts.where(col(BatchRow.project_id) == project_id)
    by_status = {status: int(n) for status, n in session.exec(counts.group_by(col(BatchRow.status)))}
    at_risk = []
    for row in session.exec(running.order_by(col(BatchRow.id)).limit(MAX_RUNNING_CHECKED)):
        guess = progress(row)
        if guess["at_risk"]:
            at_risk.append(AtRiskBatch(
                id=row.id, project_id=row.project_id, status=row.status, expires_at=row.expires_at,
                estimated_completion_at=guess["estimated_completion_at"], total=row.total,
                done=row.completed + row.failed))
    today = dt.datetime.fromtimestamp(t, dt.UTC).date().isoformat()
    spend = conn.execute(
        text("SELECT COALESCE(SUM(CASE WHEN day = :today THEN cost_usd ELSE 0 END), 0), COALESCE(SUM(cost_usd), 0) "
             "FROM usage_daily WHERE day >= :month" + (" AND project_id = :p" if project_id else "")),
        {**params, "today": today, "month": month_start(t)},
    ).one()
    return Overview(
        project_id=project_id, lines_per_second=round(ended / RATE_WINDOW_SECONDS, 3), batches_by_status=by_status,
        cost_today_usd=round(float(spend[0]), 8), month_to_date_cost_usd=round(float(spend[1]), 8),
        monthly_budget_usd=monthly_budget(session, project_id), at_risk=at_risk,
        failures_last_hour=[FailureCount(code=code or "unknown", count=int(n)) for code, n in failures],
    )
