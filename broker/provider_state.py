"""Provider state as workers see it, kept in SQL so the API can show it without talking to workers: the latest
report of each process, and a per-minute history of the last hour."""

import time
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import Engine, text
from sqlmodel import Session, col, select

from broker.tables import ProviderStateRow

STALE_SECONDS = 30.0  #: a worker silent this long no longer counts
HISTORY_SECONDS = 3600  #: how far back the per-minute history goes (older minutes are deleted as reports come)


def publish(engine: Engine, rows: Sequence[ProviderStateRow]) -> None:
    """Record processes' reports: as the latest state, and as their minute's entry in the history."""
    reports = [row.model_dump() for row in rows]
    for report in reports:
        report["minute"] = int(report["updated_at"]) // 60 * 60
    with engine.begin() as conn:
        conn.execute(
            text("INSERT INTO provider_state (provider, worker_id, updated_at, rpm_in_force, tpm_in_force, in_flight, "
                 "calls, rate_limited, p50_ms, p95_ms, circuit_open) VALUES (:provider, :worker_id, :updated_at, "
                 ":rpm_in_force, :tpm_in_force, :in_flight, :calls, :rate_limited, :p50_ms, :p95_ms, :circuit_open) "
                 "ON CONFLICT (provider, worker_id) DO UPDATE SET updated_at = excluded.updated_at, "
                 "rpm_in_force = excluded.rpm_in_force, tpm_in_force = excluded.tpm_in_force, "
                 "in_flight = excluded.in_flight, calls = excluded.calls, rate_limited = excluded.rate_limited, "
                 "p50_ms = excluded.p50_ms, p95_ms = excluded.p95_ms, circuit_open = excluded.circuit_open"),
            reports,
        )
        if not reports:
            return
        # the last report in a minute counts the calls of the 60 s before it: about that minute's calls
        conn.execute(
            text("INSERT INTO provider_minute (provider, minute, worker_id, in_flight, calls, rate_limited, p50_ms, "
                 "p95_ms) VALUES (:provider, :minute, :worker_id, :in_flight, :calls, :rate_limited, :p50_ms, "
                 ":p95_ms) ON CONFLICT (provider, minute, worker_id) DO UPDATE SET in_flight = excluded.in_flight, "
                 "calls = excluded.calls, rate_limited = excluded.rate_limited, p50_ms = excluded.p50_ms, "
                 "p95_ms = excluded.p95_ms"),
            reports,
        )
        conn.execute(text("DELETE FROM provider_minute WHERE minute < :oldest"),
                     {"oldest": int(time.time()) - HISTORY_SECONDS - 60})


def current(session: Session) -> list[ProviderStateRow]:
    """Rows of workers heard from recently."""
    fresh = time.time() - STALE_SECONDS
    return list(session.exec(select(ProviderStateRow).where(col(ProviderStateRow.updated_at) >= fresh)))


@dataclass(frozen=True)
class Minute:
    """Every process' reports of one provider in one minute, added up."""

    minute: int
    in_flight: int
    calls: int
    rate_limited: int
    p50_ms: float | None  #: the processes' medians weighted by their calls
    p95_ms: float | None  #: the highest of the processes' 95th percentiles


def history(session: Session, provider: str, since: int) -> list[Minute]:
    """The provider's minutes from ``since`` on, oldest first (minutes nobody reported in are absent)."""
    rows = session.connection().execute(
        text("SELECT minute, SUM(in_flight), SUM(calls), SUM(rate_limited), "
             "SUM(p50_ms * calls) / NULLIF(SUM(CASE WHEN p50_ms IS NULL THEN 0 ELSE calls END), 0), MAX(p95_ms) "
             "FROM provider_minute WHERE provider = :p AND minute >= :since GROUP BY minute ORDER BY minute"),
        {"p": provider, "since": since},
    )
    return [Minute(int(m), int(f), int(c), int(r), float(p50) if p50 is not None else None,
                   float(p95) if p95 is not None else None) for m, f, c, r, p50, p95 in rows]
