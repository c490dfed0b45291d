"""Storing line outcomes idempotently: a line that already ended is never written again (invariant 2)."""

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from sqlalchemy import Connection, Engine

from broker.bulk import lock_lines
from broker.driver_sql import DriverSQL
from broker.usage import Call, Owner, add_usage

MAX_ROWS_PER_STATEMENT = 500  #: VALUES rows per UPDATE statement


@dataclass(slots=True)
class Outcome:
    """How one line's attempt ended: ``succeeded``, ``failed`` (for good) or ``retry`` (after ``not_before``)."""

    line_id: int
    batch_id: str
    status: str
    response_status: int | None = None
    response_body: str | None = None
    request_id: str | None = None
    error_code: str | None = None
    error_message: str | None = None
    input_tokens: int = 0
    output_tokens: int = 0
    not_before: float = 0.0
    cost_usd: float = 0.0
    provider: str | None = None  #: who ran the call, and as which model (for the usage roll-up)
    model: str | None = None
    route: str = "realtime"
    refund_attempt: bool = False
    """A retry whose call the upstream refused unprocessed (429 with Retry-After): it does not use up an attempt."""
    move_to: str | None = None  #: a retry that falls back to another deployment (provider)


_FINAL_SQL = """
UPDATE line SET status = v.column2, response_status = v.column3, response_body = v.column4,
    request_id = v.column5, error_code = v.column6, error_message = v.column7,
    input_tokens = v.column8, output_tokens = v.column9, finished_at = v.column10, lease_until = NULL,
    cost_usd = v.column11
FROM (VALUES {rows}) AS v
WHERE line.id = v.column1 AND line.status IN ('queued', 'pending', 'batched')
RETURNING line.id
"""
_FINAL_ROW = ("(CAST(:i{n} AS BIGINT), CAST(:s{n} AS TEXT), CAST(:rs{n} AS INTEGER), CAST(:rb{n} AS TEXT), "
              "CAST(:rq{n} AS TEXT), CAST(:ec{n} AS TEXT), CAST(:em{n} AS TEXT), CAST(:it{n} AS INTEGER), "
              "CAST(:ot{n} AS INTEGER), CAST(:ft{n} AS DOUBLE PRECISION), CAST(:co{n} AS DOUBLE PRECISION))")
_RETRY_SQL = """
UPDATE line SET status = 'pending', lease_until = NULL, not_before = v.column2,
    error_code = v.column3, error_message = v.column4, attempts = line.attempts - v.column5,
    provider = COALESCE(v.column6, line.provider), remote_batch_id = NULL
FROM (VALUES {rows}) AS v
WHERE line.id = v.column1 AND line.status IN ('queued', 'batched')
"""
_RETRY_ROW = ("(CAST(:i{n} AS BIGINT), CAST(:nb{n} AS DOUBLE PRECISION), CAST(:ec{n} AS TEXT), CAST(:em{n} AS TEXT), "
              "CAST(:rf{n} AS INTEGER), CAST(:mv{n} AS TEXT))")


@lru_cache(maxsize=3 * MAX_ROWS_PER_STATEMENT)
def _statement(template: str, row: str, n: int) -> DriverSQL:
    """``template`` with ``n`` VALUES rows, made once per size."""
    return DriverSQL(template.format(rows=", ".join(row.format(n=i) for i in range(n))))

_SEQ_SQL = "UPDATE line SET result_seq = v.column2 FROM (VALUES {rows}) AS v WHERE line.id = v.column1"
_SEQ_ROW = "(CAST(:i{n} AS BIGINT), CAST(:q{n} AS INTEGER))"
_ROLL_UP_SQL = DriverSQL(
    "UPDATE batch SET completed = completed + :c, failed = failed + :f, input_tokens = input_tokens + :it, "
    "output_tokens = output_tokens + :ot, cost_usd = cost_usd + :cost, result_seq = result_seq + :n "
    "WHERE id = :id RETURNING result_seq, project_id, api_key_id, completed + failed >= total")


@dataclass(frozen=True, slots=True)
class Stored:
    """What a store changed."""

    ended: int  #: lines that ended now (a line that had already ended is left as it was)
    batches_done: tuple[str, ...] = ()  #: batches whose every line has ended now: ready to finalize


def store_outcomes(engine: Engine, outcomes: Sequence[Outcome], finished_at: float) -> Stored:
    with engine.begin() as conn:
        return write_outcomes(conn, outcomes, finished_at)


def write_outcomes(conn: Connection, outcomes: Sequence[Outcome], finished_at: float) -> Stored:
    """Write outcomes and roll finished lines into their batch's counters, in the caller's transaction.

    A line that had already ended is left as it was. Rows are locked in one
    order every writer of lines follows: line rows by id, then batch rows by id, then usage rows by key; so two
    stores (or a store and a lease renewal, a take-back, a cancel) never wait on each other in a cycle.
    """
    first: dict[int, Outcome] = {}
    for o in outcomes:
        if o.status != "retry":
            first.setdefault(o.line_id, o)  # the same line twice in one write still ends once
    finals = list(first.values())
    retries = [o for o in outcomes if o.status == "retry"]
    lock_lines(conn, [o.line_id for o in outcomes])
    updated: set[int] = set()
    for start in range(0, len(finals), MAX_ROWS_PER_STATEMENT):
        updated |= _store_finals(conn, finals[start:start + MAX_ROWS_PER_STATEMENT], finished_at)
    for start in range(0, len(retries), MAX_ROWS_PER_STATEMENT):
        _store_retries(conn, retries[start:start + MAX_ROWS_PER_STATEMENT])
    return Stored(len(updated), _roll_up(conn, [o for o in finals if o.line_id in updated]))


def _store_finals(conn: Connection, outcomes: Sequence[Outcome], finished_at: float) -> set[int]:
    """Write final outcomes; returns the ids of the lines that ended now."""
    params: dict[str, Any] = {}
    for n, o in enumerate(outcomes):
        params.update({
            f"i{n}": o.line_id, f"s{n}": o.status, f"rs{n}": o.response_status, f"rb{n}": o.response_body,
            f"rq{n}": o.request_id, f"ec{n}": o.error_code, f"em{n}": o.error_message,
            f"it{n}": o.input_tokens, f"ot{n}": o.output_tokens, f"ft{n}": finished_at, f"co{n}": o.cost_usd,
        })
    return {r[0] for r in _statement(_FINAL_SQL, _FINAL_ROW, len(outcomes)).run(conn, params)}


def _roll_up(conn: Connection, ended: Sequence[Outcome]) -> tuple[str, ...]:
    """Add ended lines to their batches' counters (batch rows in id order) and usage roll-ups, and number them after
    each batch's last ended line; returns the batches whose every line has ended now.

    The batch row's update serialises writers per batch, so numbers follow commit order and a reader of the
    partial output never finds a line appearing before one it has already read.
    """
    by_batch: dict[str, list[Outcome]] = defaultdict(list)
    for o in ended:
        by_batch[o.batch_id].append(o)
    usage: list[tuple[Owner, Call]] = []
    numbered: list[tuple[int, int]] = []
    done: list[str] = []
    for batch_id, batch_ended in sorted(by_batch.items()):
        succeeded = tokens_in = tokens_out = 0
        cost = 0.0
        for o in batch_ended:  # one pass: six generator sums cost more than the statement did
            succeeded += o.status == "succeeded"
            tokens_in += o.input_tokens
            tokens_out += o.output_tokens
            cost += o.cost_usd
        [(last, project_id, api_key_id, all_ended)] = _ROLL_UP_SQL.run(
            conn, {"id": batch_id, "c": succeeded, "f": len(batch_ended) - succeeded, "it": tokens_in,
                   "ot": tokens_out, "cost": cost, "n": len(batch_ended)})
        if all_ended:
            done.append(batch_id)
        usage += [((project_id, api_key_id), (o.provider, o.model, o.route, o.input_tokens, o.output_tokens,
                                              o.cost_usd)) for o in batch_ended if o.provider is not None]
        first = last - len(batch_ended) + 1
        numbered += [(o.line_id, first + n) for n, o in enumerate(sorted(batch_ended, key=lambda o: o.line_id))]
    add_usage(conn, usage)
    for start in range(0, len(numbered), MAX_ROWS_PER_STATEMENT):
        part = numbered[start:start + MAX_ROWS_PER_STATEMENT]
        params: dict[str, Any] = {}
        for n, (line_id, seq) in enumerate(part):
            params.update({f"i{n}": line_id, f"q{n}": seq})
        _statement(_SEQ_SQL, _SEQ_ROW, len(part)).run(conn, params)
    return tuple(done)


def _store_retries(conn: Connection, outcomes: Sequence[Outcome]) -> None:
    params: dict[str, Any] = {}
    for n, o in enumerate(outcomes):
        params.update({f"i{n}": o.line_id, f"nb{n}": o.not_before, f"ec{n}": o.error_code,
                       f"em{n}": o.error_message, f"rf{n}": int(o.refund_attempt), f"mv{n}": o.move_to})
    _statement(_RETRY_SQL, _RETRY_ROW, len(outcomes)).run(conn, params)
