"""Provider state as workers see it, kept in SQL so the API can show it without talking to workers."""

import time
from collections.abc import Sequence

from sqlalchemy import Engine, text
from sqlmodel import Session, col, select

from broker.tables import ProviderStateRow

STALE_SECONDS = 30.0  #: a worker silent this long no longer counts


def publish(engine: Engine, rows: Sequence[ProviderStateRow]) -> None:
    with engine.begin() as conn:
        conn.execute(
            text("INSERT INTO provider_state (provider, worker_id, updated_at, rpm_in_force, tpm_in_force, in_flight, "
                 "calls, rate_limited, p50_ms, p95_ms) VALUES (:provider, :worker_id, :updated_at, :rpm_in_force, "
                 ":tpm_in_force, :in_flight, :calls, :rate_limited, :p50_ms, :p95_ms) "
                 "ON CONFLICT (provider, worker_id) DO UPDATE SET updated_at = excluded.updated_at, "
                 "rpm_in_force = excluded.rpm_in_force, tpm_in_force = excluded.tpm_in_force, "
                 "in_flight = excluded.in_flight, calls = excluded.calls, rate_limited = excluded.rate_limited, "
                 "p50_ms = excluded.p50_ms, p95_ms = excluded.p95_ms"),
            [row.model_dump() for row in rows],
        )


def current(session: Session) -> list[ProviderStateRow]:
    """Rows of workers heard from recently."""
    fresh = time.time() - STALE_SECONDS
    return list(session.exec(select(ProviderStateRow).where(col(ProviderStateRow.updated_at) >= fresh)))
