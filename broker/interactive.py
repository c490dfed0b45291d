"""Interactive calls' slot rows in SQL (table ``interactive_call``): what batch release leaves to them, freeing
and renewing them. Admission itself is in broker/capacity.py."""

from collections.abc import Sequence

from sqlalchemy import Connection, Engine, text

from broker.usage import Call, add_project_usage

KEEP_ENDED_SECONDS = 120.0  #: ended rows are kept this long (per-minute counts), then deleted


def held(conn: Connection, provider: str, at: float) -> int:
    """Slots the provider's interactive calls hold or wait for: batch release leases no line into them."""
    return int(conn.execute(
        text("SELECT count(*) FROM interactive_call WHERE provider = :p AND state IN ('waiting', 'running') "
             "AND lease_until > :now"), {"p": provider, "now": at}).scalar_one())


def end(engine: Engine, call_ids: Sequence[str], usage: Sequence[tuple[str, Call]], at: float) -> None:
    """Free calls' slots, and add what calls used, ``(project id, call)``, to their projects' roll-up, in one
    transaction."""
    with engine.begin() as conn:
        if call_ids:
            conn.execute(text("UPDATE interactive_call SET state = 'ended', ended_at = :now WHERE id = :id"),
                         [{"id": call_id, "now": at} for call_id in call_ids])
        for project_id in sorted({project for project, _ in usage}):
            add_project_usage(conn, project_id, [call for project, call in usage if project == project_id])


def renew(engine: Engine, call_ids: Sequence[str], until: float, at: float) -> None:
    """Keep the live calls' rows counting, and forget rows ended long ago."""
    with engine.begin() as conn:
        if call_ids:
            conn.execute(text("UPDATE interactive_call SET lease_until = :until WHERE id = :id AND state != 'ended'"),
                         [{"id": i, "until": until} for i in call_ids])
        conn.execute(text("DELETE FROM interactive_call WHERE state = 'ended' AND ended_at < :old"),
                     {"old": at - KEEP_ENDED_SECONDS})
