"""Releasing work: which pending lines run next, on which provider queue, in what chunks.

Releasing = marking lines ``queued`` with a lease in one transaction; the caller sends the Dramatiq messages
after commit (invariant 2). The provider queue is kept shallow: no more lines are leased than the provider's
``max_concurrency`` can run, so priority is decided here, at release time, not by queue position.
"""

import math
import threading
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import Connection, Engine, text

from broker.catalogue import ProviderConfig
from broker.ids import now

CHAT_LINES_PER_MESSAGE = 16  #: one Dramatiq message carries this many one-call lines, run concurrently
EMBEDDING_CALLS_PER_MESSAGE = 4  #: packed embedding calls per message
EMBEDDINGS = "/v1/embeddings"

#: send(provider_name, line_ids) puts one message on that provider's queue (Dramatiq in practice)
SendChunk = Callable[[str, list[int]], None]

_local_locks: dict[str, threading.Lock] = {}
_local_locks_guard = threading.Lock()


@dataclass(frozen=True, slots=True)
class Chunk:
    provider: str
    line_ids: list[int]


def _provider_lock(conn: Connection, provider: str) -> threading.Lock:
    """Serialise releases per provider: across processes with an advisory lock, within one with a mutex."""
    if conn.dialect.name == "postgresql":
        conn.execute(text("SELECT pg_advisory_xact_lock(hashtext(:p))"), {"p": "release:" + provider})
    with _local_locks_guard:
        return _local_locks.setdefault(provider, threading.Lock())


def calls_in_flight(conn: Connection, provider: ProviderConfig, at: float) -> int:
    rows = conn.execute(
        text("SELECT b.endpoint, count(*) FROM line l JOIN batch b ON b.id = l.batch_id "
             "WHERE l.provider = :p AND l.status = 'queued' AND l.lease_until > :now GROUP BY b.endpoint"),
        {"p": provider.name, "now": at},
    ).all()
    return sum(
        math.ceil(n / provider.embedding_batch_size) if endpoint == EMBEDDINGS else n for endpoint, n in rows
    )


def release(engine: Engine, provider: ProviderConfig, lease_seconds: float) -> list[Chunk]:
    """Lease the highest-ranked pending lines the provider has room for; returns the messages to send."""
    at = now()
    chunks: list[Chunk] = []
    with engine.connect() as conn:
        lock = _provider_lock(conn, provider.name)
        with lock:
            free = provider.max_concurrency - calls_in_flight(conn, provider, at)
            for batch_id, endpoint in _active_batches(conn, at) if free > 0 else []:
                per_call = provider.embedding_batch_size if endpoint == EMBEDDINGS else 1
                ids = _claim(conn, batch_id, provider.name, free * per_call, at + lease_seconds, at)
                free -= math.ceil(len(ids) / per_call)
                step = per_call * EMBEDDING_CALLS_PER_MESSAGE if per_call > 1 else CHAT_LINES_PER_MESSAGE
                chunks += [Chunk(provider.name, ids[i:i + step]) for i in range(0, len(ids), step)]
                if free <= 0:
                    break
            conn.commit()
    return chunks


def _active_batches(conn: Connection, at: float) -> list[tuple[str, str]]:
    rows = conn.execute(
        text("SELECT id, endpoint FROM batch WHERE status = 'in_progress' "
             "AND (not_before IS NULL OR not_before <= :now) ORDER BY priority, created_at, id"),
        {"now": at},
    ).all()
    return [(r[0], r[1]) for r in rows]


def _claim(conn: Connection, batch_id: str, provider: str, limit: int, lease_until: float, at: float) -> list[int]:
    candidates = [r[0] for r in conn.execute(
        text("SELECT id FROM line WHERE batch_id = :b AND status = 'pending' AND provider = :p "
             "AND not_before <= :now ORDER BY idx LIMIT :n"),
        {"b": batch_id, "p": provider, "now": at, "n": limit},
    )]
    if not candidates:
        return []
    claimed = conn.execute(
        text("UPDATE line SET status = 'queued', lease_until = :lease, attempts = attempts + 1 "
             "WHERE id IN (SELECT value FROM json_each(:ids)) AND status = 'pending' RETURNING id")
        if conn.dialect.name == "sqlite" else
        text("UPDATE line SET status = 'queued', lease_until = :lease, attempts = attempts + 1 "
             "WHERE id = ANY(CAST(:ids AS BIGINT[])) AND status = 'pending' RETURNING id"),
        {"lease": lease_until, "ids": _id_list(conn, candidates)},
    )
    return sorted(r[0] for r in claimed)


def _id_list(conn: Connection, ids: list[int]) -> object:
    if conn.dialect.name == "sqlite":
        return "[" + ",".join(map(str, ids)) + "]"
    return ids


def release_and_send(engine: Engine, provider: ProviderConfig, lease_seconds: float, send: SendChunk) -> int:
    """Release for one provider and send the messages; returns the number of lines sent."""
    chunks = release(engine, provider, lease_seconds)
    for chunk in chunks:
        send(chunk.provider, chunk.line_ids)
    return sum(len(c.line_ids) for c in chunks)
