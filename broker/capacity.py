"""Admitting an interactive call to a provider's concurrency: the one budget batch lines draw on too.

A call is admitted when the provider's leased lines, the interactive calls running and those waiting ahead of it
(lower ``rank``, then earlier) leave a slot; otherwise its row waits, and batch release (broker/dispatch.py) leases
no line into the slots waiting calls need, so batch work yields as its calls end. Serialised with release per
provider, so a slot is never given twice.
"""

from sqlalchemy import Engine, text

from broker.catalogue import ProviderConfig
from broker.dispatch import _provider_lock, calls_in_flight

FLEX_RANK_OFFSET = 1_000  #: ``service_tier: "flex"`` calls rank behind every interactive call, ahead of batches


def try_admit(engine: Engine, provider: ProviderConfig, call_id: str, *, project_id: str, rank: int,
              created_at: float, lease_until: float, at: float, new: bool) -> bool:
    """Admit the call (its row is ``running``) if a slot is free for it; ``new`` inserts its row (``waiting`` if
    not admitted: the slot it needs is kept from batch release from then on)."""
    with engine.connect() as conn, _provider_lock(conn, provider.name):
        interactive = int(conn.execute(
            text("SELECT count(*) FROM interactive_call WHERE provider = :p AND lease_until > :now AND id != :id "
                 "AND (state = 'running' OR (state = 'waiting' AND (rank < :rank OR (rank = :rank AND "
                 "created_at < :created))))"),
            {"p": provider.name, "now": at, "id": call_id, "rank": rank, "created": created_at}).scalar_one())
        admitted = calls_in_flight(conn, provider, at) + interactive < provider.max_concurrency
        if new:
            conn.execute(text("INSERT INTO interactive_call (id, provider, project_id, rank, state, created_at, "
                              "lease_until) VALUES (:id, :p, :project, :rank, :state, :created, :lease)"),
                         {"id": call_id, "p": provider.name, "project": project_id, "rank": rank,
                          "state": "running" if admitted else "waiting", "created": created_at,
                          "lease": lease_until})
        elif admitted:
            conn.execute(text("UPDATE interactive_call SET state = 'running' WHERE id = :id"), {"id": call_id})
        conn.commit()
    return admitted
