"""Interactive calls' slot rows in SQL (table ``interactive_call``): what batch release leaves to them, and the
counts ``GET /v1/providers`` shows. Admission itself is in broker/capacity.py."""

from collections.abc import Sequence

from sqlalchemy import Connection, Engine, text

from broker.usage import Call, add_project_usage

KEEP_ENDED_SECONDS = 120.0  #: ended rows are kept this long (per-minute counts), then deleted
MINUTE = 60.0


def held(conn: Connection, provider: str, at: float) -> int:
    """Slots the provider's interactive calls hold or wait for: batch release leases no line into them."""
    return int(conn.execute(
        text("SELECT count(*) FROM interactive_call WHERE provider = :p AND state IN ('waiting', 'running') "
             "AND lease_until > :now"), {"p": provider, "now": at}).scalar_one())


def end(engine: Engine, call_id: str, at: float, project_id: str = "", calls: Sequence[Call] = ()) -> None:
    """The call is over (answered, failed or gave up waiting): its slot is free, and what it used goes into the
    project's roll-up."""
    with engine.begin() as conn:
        conn.execute(text("UPDATE interactive_call SET state = 'ended', ended_at = :now WHERE id = :id"),
                     {"id": call_id, "now": at})
        if calls:
            add_project_usage(conn, project_id, calls)


def renew(engine: Engine, call_ids: Sequence[str], until: float, at: float) -> None:
    """Keep the live calls' rows counting, and forget rows ended long ago."""
    with engine.begin() as conn:
        if call_ids:
            conn.execute(text("UPDATE interactive_call SET lease_until = :until WHERE id = :id AND state != 'ended'"),
                         [{"id": i, "until": until} for i in call_ids])
        conn.execute(text("DELETE FROM interactive_call WHERE state = 'ended' AND ended_at < :old"),
                     {"old": at - KEEP_ENDED_SECONDS})


def load(conn: Connection, at: float) -> dict[str, tuple[int, int]]:
    """Per provider: interactive calls in flight now, and calls started in the last minute."""
    rows = conn.execute(
        text("SELECT provider, sum(CASE WHEN state = 'running' AND lease_until > :now THEN 1 ELSE 0 END), "
             "sum(CASE WHEN state != 'waiting' AND created_at > :minute THEN 1 ELSE 0 END) "
             "FROM interactive_call GROUP BY provider"), {"now": at, "minute": at - MINUTE}).all()
    return {r[0]: (int(r[1] or 0), int(r[2] or 0)) for r in rows}
