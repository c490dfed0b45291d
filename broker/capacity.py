"""Admitting an interactive call to a provider's concurrency: the one budget batch lines draw on too.

A call is admitted when the provider's leased lines, the interactive calls running and those waiting ahead of it
(lower ``rank``, then earlier) leave a slot; otherwise its row waits, and batch release (broker/dispatch.py) leases
no line into the slots waiting calls need, so batch work yields as its calls end. Serialised with release per
provider, so a slot is never given twice.
"""

from collections.abc import Sequence

from sqlalchemy import Connection, Engine, text

from broker.catalogue import ProviderConfig
from broker.dispatch import _provider_lock, calls_in_flight

FLEX_RANK_OFFSET = 1_000  #: ``service_tier: "flex"`` calls rank behind every interactive call, ahead of batches


def try_admit(engine: Engine, provider: ProviderConfig, call_id: str, *, project_id: str, rank: int,
              created_at: float, lease_until: float, at: float, new: bool, spares: Sequence[str] = ()) -> list[str]:
    """Admit the call (its row is ``running``) if a slot is free for it; ``new`` inserts its row (``waiting`` if
    not admitted: the slot it needs is kept from batch release from then on). With ``spares`` (ids), a new call
    admitted while no call waits takes that many more slots for its process' next calls, as long as they are at
    most half the slots left (the rest stays for batch release and other processes). Returns the ids admitted:
    ``call_id`` first, then the spares'; none when the call waits."""
    with engine.connect() as conn, _provider_lock(conn, provider.name):
        interactive = int(conn.execute(
            text("SELECT count(*) FROM interactive_call WHERE provider = :p AND lease_until > :now AND id != :id "
                 "AND (state = 'running' OR (state = 'waiting' AND (rank < :rank OR (rank = :rank AND "
                 "created_at < :created))))"),
            {"p": provider.name, "now": at, "id": call_id, "rank": rank, "created": created_at}).scalar_one())
        room = provider.max_concurrency - calls_in_flight(conn, provider, at) - interactive
        admitted = [call_id] if room > 0 else []
        if new and admitted and spares and not _anyone_waits(conn, provider.name, at):
            admitted += list(spares[:(room - 1) // 2])
        if new:
            conn.execute(text("INSERT INTO interactive_call (id, provider, project_id, rank, state, created_at, "
                              "lease_until) VALUES (:id, :p, :project, :rank, :state, :created, :lease)"),
                         [{"id": slot, "p": provider.name, "project": project_id, "rank": rank,
                           "state": "running" if admitted else "waiting", "created": created_at,
                           "lease": lease_until} for slot in admitted or [call_id]])
        elif admitted:
            conn.execute(text("UPDATE interactive_call SET state = 'running' WHERE id = :id"), {"id": call_id})
        conn.commit()
    return admitted


def _anyone_waits(conn: Connection, provider: str, at: float) -> bool:
    return conn.execute(text("SELECT 1 FROM interactive_call WHERE provider = :p AND state = 'waiting' AND "
                             "lease_until > :now LIMIT 1"), {"p": provider, "now": at}).first() is not None
