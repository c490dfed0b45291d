"""Native batch submissions in SQL: which lines go out together, which remote batches are due a poll, and
where each line goes when its remote batch ends.

Lines routed to a provider's batch API are loaded ``batched``. A worker claims a submission (one batch's
unsent lines, up to the provider's ``max_lines``), uploads it, and records the remote id; later it polls and,
once the remote batch has ended, stores every line's outcome at once. Lines the remote batch did not finish
(expired, cancelled, retryable errors, not reported) go back to ``pending`` and run in real time, which the
route's reserve (broker/routing.py) left time for. Remote batches still running past ``cancel_after``, or whose
batch is no longer running, are cancelled.
"""

import time
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import Connection, Engine, text

from broker.budget import affordable, committed_cost, line_cost, month_params, within_monthly
from broker.bulk import id_list_match
from broker.catalogue import ProviderConfig
from broker.ids import new_id
from broker.results import Outcome, write_outcomes
from broker.routing import fallback_reserve

SUBMIT_CLAIM_SECONDS = 600.0  #: a submission silent this long (its worker died) is given up and its lines resent
POLL_CLAIM_SECONDS = 300.0  #: a poll or collection silent this long is taken over by another worker


@dataclass(frozen=True, slots=True)
class Submission:
    """Lines of one batch to send as one remote batch: ``(line id, custom_id, body)`` each."""

    id: str
    batch_id: str
    endpoint: str
    lines: list[tuple[int, str, str]]


@dataclass(frozen=True, slots=True)
class DuePoll:
    id: str
    remote_id: str
    batch_id: str
    cancel: bool  #: past its cancel_after, or its batch stopped running: cancel it (if not asked already)
    cancel_requested: bool


def native_work(engine: Engine, provider: str, at: float) -> bool:
    """Whether the provider has lines waiting to be submitted or remote batches due a poll."""
    with engine.connect() as conn:
        return conn.execute(
            text("SELECT 1 FROM line WHERE provider = :p AND status = 'batched' AND remote_batch_id IS NULL "
                 "UNION ALL SELECT 1 FROM remote_batch WHERE provider = :p AND status != 'ended' "
                 "AND (next_poll_at <= :now OR status = 'submitting') LIMIT 1"),
            {"p": provider, "now": at},
        ).first() is not None


def claim_submission(engine: Engine, provider: ProviderConfig, at: float) -> Submission | None:
    """Take one running batch's unsent ``batched`` lines for a new remote batch; None when there are none.

    A batch with ``max_cost_usd`` sends no more lines than its budget left can pay for at their expected cost
    (lines in remote batches count at that cost until they come back); lines it cannot afford that way run in
    real time, where dispatch stops exactly at the cap. Projects past their monthly budget send nothing.
    """
    assert provider.native_batch is not None
    with engine.begin() as conn:
        candidates = conn.execute(
            text("SELECT b.id, b.endpoint, b.in_progress_at, b.expires_at, b.max_cost_usd, b.cost_usd, b.plan_json "
                 "FROM batch b WHERE b.status = 'in_progress' "
                 f"AND {within_monthly('b.')} AND EXISTS (SELECT 1 FROM line l "
                 "WHERE l.batch_id = b.id AND l.provider = :p AND l.status = 'batched' AND l.remote_batch_id IS NULL) "
                 "ORDER BY b.priority, b.created_at LIMIT 20"),
            {"p": provider.name, **month_params(at)},
        ).all()
        for batch_id, endpoint, started, expires_at, max_cost, cost, plan_json in candidates:
            room = provider.native_batch.max_lines
            committed = committed_cost(conn, batch_id)
            if max_cost is not None:
                room = min(room, affordable(max_cost - cost - committed, plan_json, provider.name))
            if room <= 0:
                if committed == 0:  # nothing out there to wait for: real-time dispatch takes them to the cap
                    _run_in_real_time(conn, batch_id, provider.name)
                continue
            cancel_after = expires_at - fallback_reserve(started or at, expires_at) if expires_at else at + 86_400
            return _submit_lines(conn, batch_id, endpoint, provider.name, room, cancel_after, plan_json, at)
    return None


def _run_in_real_time(conn: Connection, batch_id: str, provider: str) -> None:
    conn.execute(text("UPDATE line SET status = 'pending' WHERE batch_id = :b AND provider = :p "
                      "AND status = 'batched' AND remote_batch_id IS NULL"), {"b": batch_id, "p": provider})


def _submit_lines(conn: Connection, batch_id: str, endpoint: str, provider: str, room: int, cancel_after: float,
                  plan_json: str | None, at: float) -> Submission:
    ids = [r[0] for r in conn.execute(
        text("SELECT id FROM line WHERE batch_id = :b AND provider = :p AND status = 'batched' "
             "AND remote_batch_id IS NULL ORDER BY idx LIMIT :n"),
        {"b": batch_id, "p": provider, "n": room},
    )]
    submission_id = new_id("rbatch")
    conn.execute(
        text("INSERT INTO remote_batch (id, batch_id, provider, status, lines, estimated_cost_usd, created_at, "
             "cancel_after, cancel_requested, next_poll_at, claimed_until) VALUES (:id, :b, :p, 'submitting', :n, "
             ":est, :t, :ca, :no, :t, :claim)"),
        {"id": submission_id, "b": batch_id, "p": provider, "n": len(ids), "t": at, "no": False,
         "est": len(ids) * line_cost(plan_json, provider), "ca": cancel_after, "claim": at + SUBMIT_CLAIM_SECONDS},
    )
    match, id_param = id_list_match(conn, "id", ids)
    lines = conn.execute(
        text(f"UPDATE line SET remote_batch_id = :rb WHERE {match} AND remote_batch_id IS NULL "
             "AND status = 'batched' RETURNING id, custom_id, body"),
        {"rb": submission_id, "ids": id_param},
    ).all()
    conn.execute(text("UPDATE remote_batch SET lines = :n WHERE id = :id"), {"n": len(lines), "id": submission_id})
    return Submission(submission_id, batch_id, endpoint, sorted((r[0], r[1], r[2]) for r in lines))


def recover_lost_submissions(engine: Engine, provider: str, at: float) -> None:
    """Submissions whose worker died before recording a remote id: their lines are sent again.

    If the dead worker had in fact created the remote batch, those lines may run twice upstream; results are
    stored once (invariant 2).
    """
    with engine.begin() as conn:
        lost = [r[0] for r in conn.execute(
            text("SELECT id FROM remote_batch WHERE provider = :p AND status = 'submitting' AND claimed_until < :now"),
            {"p": provider, "now": at},
        )]
        for submission_id in lost:
            conn.execute(text("UPDATE line SET remote_batch_id = NULL WHERE remote_batch_id = :rb "
                              "AND status = 'batched'"), {"rb": submission_id})
            conn.execute(text("UPDATE remote_batch SET status = 'ended', ended_at = :t, claimed_until = NULL, "
                              "last_error = 'the worker submitting it stopped' WHERE id = :id"),
                         {"t": at, "id": submission_id})


def mark_submitted(engine: Engine, submission_id: str, remote_id: str, poll_seconds: float) -> None:
    at = time.time()
    with engine.begin() as conn:
        conn.execute(
            text("UPDATE remote_batch SET status = 'running', remote_id = :r, submitted_at = :t, "
                 "next_poll_at = :next, claimed_until = NULL WHERE id = :id"),
            {"r": remote_id, "t": at, "next": at + poll_seconds, "id": submission_id},
        )


def submission_failed(engine: Engine, submission_id: str, error: str) -> None:
    """The provider refused the submission: its lines run in real time instead."""
    with engine.begin() as conn:
        conn.execute(text("UPDATE line SET status = 'pending', remote_batch_id = NULL WHERE remote_batch_id = :rb "
                          "AND status = 'batched'"), {"rb": submission_id})
        conn.execute(text("UPDATE remote_batch SET status = 'ended', ended_at = :t, claimed_until = NULL, "
                          "last_error = :e WHERE id = :id"), {"t": time.time(), "e": error, "id": submission_id})


def claim_polls(engine: Engine, provider: str, at: float) -> list[DuePoll]:
    """Running remote batches due a poll, each claimed for this worker."""
    with engine.begin() as conn:
        rows = conn.execute(
            text("SELECT r.id, r.remote_id, r.batch_id, r.cancel_after <= :now OR b.status != 'in_progress', "
                 "r.cancel_requested FROM remote_batch r JOIN batch b ON b.id = r.batch_id "
                 "WHERE r.provider = :p AND r.status = 'running' AND r.next_poll_at <= :now "
                 "AND (r.claimed_until IS NULL OR r.claimed_until < :now)"),
            {"p": provider, "now": at},
        ).all()
        claimed = []
        for row in rows:
            if conn.execute(
                text("UPDATE remote_batch SET claimed_until = :until WHERE id = :id "
                     "AND (claimed_until IS NULL OR claimed_until < :now)"),
                {"until": at + POLL_CLAIM_SECONDS, "id": row[0], "now": at},
            ).rowcount == 1:
                claimed.append(DuePoll(row[0], row[1], row[2], bool(row[3]), bool(row[4])))
    return claimed


def polled(engine: Engine, poll_id: str, remote_status: str | None, next_poll_at: float, cancel_requested: bool,
           error: str | None = None) -> None:
    """Record a poll of a remote batch that is still running (or could not be read) and release the claim."""
    with engine.begin() as conn:
        conn.execute(
            text("UPDATE remote_batch SET remote_status = COALESCE(:s, remote_status), next_poll_at = :next, "
                 "cancel_requested = :c, last_error = :e, claimed_until = NULL WHERE id = :id"),
            {"s": remote_status, "next": next_poll_at, "c": cancel_requested, "e": error, "id": poll_id},
        )


def open_lines(engine: Engine, poll_id: str) -> list[tuple[int, str, str]]:
    """``(line id, custom_id, body)`` of the remote batch's lines still waiting for their outcome."""
    with engine.connect() as conn:
        return [(r[0], r[1], r[2]) for r in conn.execute(
            text("SELECT id, custom_id, body FROM line WHERE remote_batch_id = :rb AND status = 'batched'"),
            {"rb": poll_id},
        )]


def finish(engine: Engine, poll_id: str, remote_status: str, outcomes: Sequence[Outcome]) -> None:
    """Store the ended remote batch's outcomes (retries run in real time) and close it, in one transaction."""
    at = time.time()
    with engine.begin() as conn:
        write_outcomes(conn, outcomes, at)
        conn.execute(
            text("UPDATE remote_batch SET status = 'ended', remote_status = :s, ended_at = :t, claimed_until = NULL "
                 "WHERE id = :id"),
            {"s": remote_status, "t": at, "id": poll_id},
        )
