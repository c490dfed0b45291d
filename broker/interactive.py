"""Interactive calls' slot rows in SQL (table ``interactive_call``): what batch release leaves to them, freeing
and renewing them. Admission itself is in broker/capacity.py."""

from collections.abc import Sequence

from sqlalchemy import Connection, Engine, text

from broker.driver_sql import DriverSQL
from broker.usage import Call, add_usage

KeyedCall = tuple[str, str | None, Call]  #: (project id, API key id or None, call) of one interactive call

KEEP_ENDED_SECONDS = 120.0  #: ended rows are kept this long (per-minute counts), then deleted


_HELD = DriverSQL("SELECT count(*) FROM interactive_call WHERE provider = :p AND state IN ('waiting', 'running') "
                  "AND lease_until > :now")


def held(conn: Connection, provider: str, at: float) -> int:
    """Slots the provider's interactive calls hold or wait for: batch release leases no line into them."""
    [(count,)] = _HELD.run(conn, {"p": provider, "now": at})
    return int(count)


def end(engine: Engine, call_ids: Sequence[str], usage: Sequence[KeyedCall], at: float) -> None:
    """Free calls' slots, and add what calls used to their projects' and keys' roll-ups, in one transaction."""
    with engine.begin() as conn:
        if call_ids:
            conn.execute(text("UPDATE interactive_call SET state = 'ended', ended_at = :now WHERE id = :id"),
                         [{"id": call_id, "now": at} for call_id in call_ids])
        add_usage(conn, [((project_id, key_id), call) for project_id, key_id, call in usage])


def renew(engine: Engine, call_ids: Sequence[str], until: float, at: float) -> None:
    """Keep the live calls' rows counting, and forget rows ended long ago."""
    with engine.begin() as conn:
        if call_ids:
            conn.execute(text("UPDATE interactive_call SET lease_until = :until WHERE id = :id AND state != 'ended'"),
                         [{"id": i, "until": until} for i in call_ids])
        conn.execute(text("DELETE FROM interactive_call WHERE state = 'ended' AND ended_at < :old"),
                     {"old": at - KEEP_ENDED_SECONDS})
