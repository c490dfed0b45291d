"""Releasing work: which pending lines run next, on which provider queue, in what chunks.

Releasing = marking lines ``queued`` with a lease in one transaction; the caller sends the Dramatiq messages
after commit (invariant 2). A message carries its lines' bodies, so a worker needs no read before calling the
upstream; the database still owns every line. The provider queue is kept shallow: no more lines are leased
than the provider's ``max_concurrency`` can run, so priority is decided here, at release time.
"""

import logging
import math
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import orjson
from sqlalchemy import Connection, Engine, text

from broker import metrics
from broker.budget import UNDER_CAP, month_params, within_monthly
from broker.bulk import id_list_match, id_list_param, id_match_sql, lock_lines
from broker.catalogue import ProviderConfig
from broker.driver_sql import DriverSQL
from broker.ids import now
from broker.interactive import held as interactive_held
from broker.ranking import ActiveBatch, deal, tiers
from broker.results import Outcome, store_outcomes
from schemas.batches import EMBEDDINGS_ENDPOINT

log = logging.getLogger(__name__)
CHAT_LINES_PER_MESSAGE = 16  #: lines per message at most (its calls run, end and free their slots independently)
EMBEDDING_CALLS_PER_MESSAGE = 4  #: packed embedding calls per message
RECLAIM_BATCH_LINES = 5_000  #: expired leases handled per provider per call of reclaim_expired_leases

_local_locks: dict[str, threading.Lock] = {}
_local_locks_guard = threading.Lock()


@dataclass(slots=True)
class LeasedLine:
    """A line as a worker receives it."""

    id: int
    batch_id: str
    endpoint: str
    body: str
    attempts: int
    expires_at: int | None
    #: providers the batch may fall back to, in order (None: any deployment of the model)
    eligible: list[str] | None = field(default=None)
    #: when the lease given with this message ends (unix time); a worker receiving it later drops the line
    lease_until: float = 0.0

    def to_message(self) -> list[object]:
        """Its fields in order, as :class:`LeasedLine` takes them back (``astuple`` deep-copied every field)."""
        return [self.id, self.batch_id, self.endpoint, self.body, self.attempts, self.expires_at, self.eligible,
                self.lease_until]


@dataclass(frozen=True, slots=True)
class Chunk:
    provider: str
    lines: list[LeasedLine]


#: send(chunk) puts one message on the chunk's provider queue (Dramatiq in practice)
SendChunk = Callable[[Chunk], None]


_RELEASE_LOCK = DriverSQL("SELECT pg_advisory_xact_lock(hashtext(:p))")


def _provider_lock(conn: Connection, provider: str) -> threading.Lock:
    """Serialise releases per provider: across processes with an advisory lock, within one with a mutex."""
    if conn.dialect.name == "postgresql":
        _RELEASE_LOCK.run(conn, {"p": "release:" + provider})
    with _local_locks_guard:
        return _local_locks.setdefault(provider, threading.Lock())


_CALLS_BY_BATCH = DriverSQL(
    "SELECT l.batch_id, b.endpoint, count(*) FROM line l JOIN batch b ON b.id = l.batch_id "
    "WHERE l.provider = :p AND l.status = 'queued' AND l.lease_until > :now GROUP BY l.batch_id, b.endpoint")


def calls_by_batch(conn: Connection, provider: ProviderConfig, at: float) -> dict[str, int]:
    """Upstream calls in flight per batch: leased lines, packed embedding lines counted per call."""
    rows = _CALLS_BY_BATCH.run(conn, {"p": provider.name, "now": at})
    return {batch_id: math.ceil(n / provider.embedding_batch_size) if endpoint == EMBEDDINGS_ENDPOINT else n
            for batch_id, endpoint, n in rows}


def calls_in_flight(conn: Connection, provider: ProviderConfig, at: float) -> int:
    return sum(calls_by_batch(conn, provider, at).values())


def release(conn: Connection, provider: ProviderConfig, lease_seconds: float) -> list[Chunk]:
    """Lease the highest-ranked pending lines the provider has room for, in the caller's transaction.

    Ranking (broker/ranking.py): priority tier after deadline escalation, then round-robin between projects.
    The caller commits, then sends the returned chunks.
    """
    at = time.time()  # not ids.now(): whole seconds would hold every sub-second retry back to the next second
    chunks: list[Chunk] = []
    running = calls_by_batch(conn, provider, at)
    # interactive calls come first: slots they hold or wait for are not leased to lines
    free = provider.max_concurrency - sum(running.values()) - interactive_held(conn, provider.name, at)

    active, eligible = _active_batches(conn, at, running) if free > 0 else ([], {})

    def take(batch: ActiveBatch, calls: int) -> int:
        per_call = provider.embedding_batch_size if batch.endpoint == EMBEDDINGS_ENDPOINT else 1
        claimed = _claim(conn, batch.id, provider.name, calls * per_call, at + lease_seconds, at)
        lines = [LeasedLine(i, batch.id, batch.endpoint, body, attempts, batch.expires_at, eligible[batch.id],
                            at + lease_seconds) for i, body, attempts in claimed]
        step = per_call * EMBEDDING_CALLS_PER_MESSAGE if per_call > 1 else CHAT_LINES_PER_MESSAGE
        chunks.extend(Chunk(provider.name, lines[i:i + step]) for i in range(0, len(lines), step))
        return math.ceil(len(lines) / per_call)

    for tier in tiers(active, at):
        free = deal(free, tier, take)
        if free <= 0:
            break
    return chunks


_ACTIVE_BATCHES = DriverSQL(
    "SELECT id, project_id, endpoint, priority, created_at, expires_at, in_progress_at, total - completed - failed, "
    "completed + failed, eligible_json FROM batch WHERE status = 'in_progress' "
    f"AND (not_before IS NULL OR not_before <= :now) AND {UNDER_CAP} AND {within_monthly()}")


def _active_batches(conn: Connection, at: float,
                    running: dict[str, int]) -> tuple[list[ActiveBatch], dict[str, list[str] | None]]:
    """Batches that may run now (started, not over a budget), and the providers each may fall back to."""
    rows = _ACTIVE_BATCHES.run(conn, {"now": at, **month_params(at)})
    batches = [ActiveBatch(id=r[0], project_id=r[1], endpoint=r[2], priority=r[3], created_at=r[4],
                           expires_at=r[5], in_progress_at=r[6], remaining=r[7], done=r[8],
                           in_flight=running.get(r[0], 0)) for r in rows]
    return batches, {r[0]: orjson.loads(r[9]) if r[9] else None for r in rows}


_CANDIDATES = DriverSQL("SELECT id FROM line WHERE batch_id = :b AND status = 'pending' AND provider = :p "
                        "AND not_before <= :now ORDER BY idx LIMIT :n")
_LEASE = {dialect: DriverSQL("UPDATE line SET status = 'queued', lease_until = :lease, attempts = attempts + 1 "
                             f"WHERE {id_match_sql(dialect, 'id')} AND status = 'pending' RETURNING id, body, attempts")
          for dialect in ("sqlite", "postgresql")}


def _claim(conn: Connection, batch_id: str, provider: str, limit: int, lease_until: float,
           at: float) -> list[tuple[int, str, int]]:
    candidates = [r[0] for r in _CANDIDATES.run(conn, {"b": batch_id, "p": provider, "now": at, "n": limit})]
    if not candidates:
        return []
    lock_lines(conn, candidates)
    claimed = _LEASE[conn.dialect.name].run(conn, {"lease": lease_until, "ids": id_list_param(conn, candidates)})
    return sorted((r[0], r[1], r[2]) for r in claimed)


RENEW_BATCH_LINES = 500  #: leases renewed per statement


def renew_leases(engine: Engine, leases: Sequence[tuple[int, int]], until: float) -> set[int]:
    """Extend the leases a live worker holds, ``(line id, attempts)`` as leased, to ``until``; returns the ids
    renewed. A line missing from the answer has moved on (taken back, or leased again to another worker)."""
    renewed: set[int] = set()
    with engine.begin() as conn:
        lock_lines(conn, [line_id for line_id, _ in leases])  # the process' own store may be writing some of them
        for start in range(0, len(leases), RENEW_BATCH_LINES):
            part = leases[start:start + RENEW_BATCH_LINES]
            pairs = ", ".join(f"(:i{n}, :a{n})" for n in range(len(part)))
            params: dict[str, float] = {"until": until}
            for n, (line_id, attempts) in enumerate(part):
                params[f"i{n}"], params[f"a{n}"] = line_id, attempts
            renewed.update(r[0] for r in conn.execute(
                text(f"UPDATE line SET lease_until = :until WHERE status = 'queued' AND (id, attempts) IN ({pairs}) "
                     "RETURNING id"), params))
    return renewed


def give_back(engine: Engine, leases: Sequence[tuple[int, int]]) -> None:
    """Return leased lines a worker will not run (it is stopping) to ``pending``, for another to run at once.

    ``leases`` are ``(line id, attempts)`` as leased: a line leased again since (its lease had expired) is left
    to its new holder. The attempt is not counted.
    """
    with engine.begin() as conn:
        lock_lines(conn, [line_id for line_id, _ in leases])
        conn.execute(text("UPDATE line SET status = 'pending', lease_until = NULL, attempts = attempts - 1 "
                          "WHERE id = :id AND attempts = :attempts AND status = 'queued'"),
                     [{"id": line_id, "attempts": attempts} for line_id, attempts in leases])


class QueueGate:
    """Sends chunks, and holds leasing back while the queue is away.

    A line leased for a message that could not be sent keeps its slot until its lease ends (see :func:`send_all`),
    so while Redis is down every slot freed by an ending call would be lost for a lease's length. After a send
    fails, no line is leased for the queue until it answers ``ping`` again.
    """

    def __init__(self, send: SendChunk, ping: Callable[[], object]) -> None:
        self._send, self._ping = send, ping
        self._away = False

    def __call__(self, chunk: Chunk) -> None:
        try:
            self._send(chunk)
        except Exception:
            self._away = True
            raise

    def open(self) -> bool:
        """Whether lines may be leased for the queue now (pings it once if the last send failed)."""
        if self._away:
            try:
                self._ping()
            except Exception:
                return False
            self._away = False
            log.info("the queue answers again: leasing resumes")
        return True


def send_all(engine: Engine, chunks: Sequence[Chunk], send: SendChunk) -> int:
    """Send every chunk's message; returns the lines sent.

    A message that could not be sent (the queue is away) is not retried: its lines stay leased until their lease
    ends, then the planner takes them back. Leasing them again at once could run a line twice, since a send that
    failed may still have reached the queue, and a message that arrives within its lease runs. The chunks after
    it are not tried: they never left, so their lines go back to ``pending`` at once.
    """
    sent = 0
    for n, chunk in enumerate(chunks):
        try:
            send(chunk)
            sent += len(chunk.lines)
        except Exception:
            log.warning("provider %s: sending %d lines failed; they run again when their lease ends",
                        chunk.provider, len(chunk.lines), exc_info=True)
            if unsent := [(line.id, line.attempts) for later in chunks[n + 1:] for line in later.lines]:
                give_back(engine, unsent)
            break
    return sent


def release_and_send(engine: Engine, provider: ProviderConfig, lease_seconds: float, send: SendChunk) -> int:
    """Release for one provider and send the messages; returns the number of lines sent (none while the queue is
    away, see :class:`QueueGate`)."""
    if isinstance(send, QueueGate) and not send.open():
        return 0
    with engine.connect() as conn, _provider_lock(conn, provider.name):
        chunks = release(conn, provider, lease_seconds)
        conn.commit()
    return send_all(engine, chunks, send)


def reclaim_expired_leases(engine: Engine, provider: ProviderConfig, max_attempts: int) -> None:
    """Take back the provider's lines whose lease ran out (their worker died or lost them, invariant 2).

    A line with attempts left goes back to ``pending``; one that has had ``max_attempts`` fails ``worker_lost``.
    """
    t = now()
    with engine.connect() as conn:
        rows = conn.execute(
            text("SELECT id, batch_id, attempts FROM line WHERE provider = :p AND status = 'queued' "
                 "AND lease_until < :now LIMIT :n"),
            {"p": provider.name, "now": t, "n": RECLAIM_BATCH_LINES},
        ).all()
    if not rows:
        return
    spent = [Outcome(r[0], r[1], "failed", error_code="worker_lost",
                     error_message=f"No worker reported a result after {r[2]} attempts.")
             for r in rows if r[2] >= max_attempts]
    failed = store_outcomes(engine, spent, t).ended
    again = [r[0] for r in rows if r[2] < max_attempts]
    with engine.begin() as conn:
        lock_lines(conn, again)  # a worker that outlived its lease may be storing some of them right now
        match, ids = id_list_match(conn, "id", again)
        retried = conn.execute(text(f"UPDATE line SET status = 'pending', lease_until = NULL WHERE {match} "
                                    "AND status = 'queued' AND lease_until < :now"), {"now": t, "ids": ids}).rowcount
    metrics.leases_taken_back(provider.name, retried=retried, failed=failed)
    log.warning("provider %s: took back %d expired leases", provider.name, len(rows))
