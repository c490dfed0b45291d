"""Interactive calls' slot rows in SQL (table ``interactive_call``): what batch release leaves to them, freeing
and renewing them. Admission itself is in broker/capacity.py."""

from collections.abc import Sequence

from sqlalchemy import Connection, Engine, text

from broker.usage import Call, add_key_usage, add_project_usage

KeyedCall = tuple[str, str | None, Call]  #: (project id, API key id or None, call) of one interactive call

KEEP_ENDED_SECONDS = 120.0  #: ended rows are kept this long (per-minute counts), then deleted


def held(conn: Connection, provider: str, at: float) -> int:
    """Slots the provider's interactive calls hold or wait for: batch release leases no line into them."""
    return int(conn.execute(
        text("SELECT count(*) FROM interactive_call WHERE provider = :p AND state IN ('waiting', 'running') "
             "AND lease_until > :now"), {"p": provider, "now": at}).scalar_one())


def end(engine: Engine, call_ids: Sequence[str], usage: Sequence[KeyedCall], at: float) -> None:
    """Free calls' slots, and add what calls used to their projects' and keys' roll-ups, in one transaction."""
    with engine.begin() as conn:
        if call_ids:
            conn.execute(text("UPDATE interactive_call SET state = 'ended', ended_at = :now WHERE id = :id"),
                         [{"id": call_id, "now": at} for call_id in call_ids])
        for project_id in sorted({project for project, _, _ in usage}):
            add_project_usage(conn, project_id, [call for project, _, call in usage if project == project_id])
        for project_id, key_id in sorted({(project, key) for project, key, _ in usage if key is not None}):
            add_key_usage(conn, project_id, key_id, [call for _, key, call in usage if key == key_id])


def renew(engine: Engine, call_ids: Sequence[str], until: float, at: float) -> None:
    """Keep the live calls' rows counting, and forget rows ended long ago."""
    with engine.begin() as conn:
        if call_ids:
            conn.execute(text("UPDATE interactive_call SET lease_until = :until WHERE id = :id AND state != 'ended'"),
                         [{"id": i, "until": until} for i in call_ids])
        conn.execute(text("DELETE FROM interactive_call WHERE state = 'ended' AND ended_at < :old"),
                     {"old": at - KEEP_ENDED_SECONDS})
