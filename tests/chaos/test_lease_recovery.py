"""Workers that vanish, messages that are lost or delivered twice: SQL leases and idempotent results lose nothing.

DESIGN.md invariant 2: releasing work is leasing lines in SQL; a line whose worker went silent is taken back
when its lease expires, and a line executed twice is stored once.
"""

import asyncio
import logging
import time

import pytest
from sqlalchemy import Engine, text

from broker.dispatch import LeasedLine
from broker.results import Outcome, store_outcomes
from simulator import SimulatorServer
from simulator.responses import SIM_SLOW_MARKER
from tests.harness import EmbeddedBroker, MakeBroker, chat_ids, chat_line, results_once, submit, wait_for
from workers.flow import ProviderFlow
from workers.leases import LeaseKeeper


def _max_attempts(engine: Engine, batch_id: str) -> int:
    with engine.connect() as conn:
        return int(conn.execute(text("SELECT coalesce(max(attempts), 0) FROM line WHERE batch_id = :b"),
                                {"b": batch_id}).scalar_one())


def _wait_for_second_lease(broker: EmbeddedBroker, batch_id: str) -> None:
    """Wait until the planner has leased lines, seen the leases expire unanswered and leased them again."""
    deadline = time.monotonic() + 10
    while _max_attempts(broker.core.engine, batch_id) < 2:
        assert time.monotonic() < deadline, "expired leases were never taken back"
        time.sleep(0.05)


def test_lines_leased_to_a_vanished_worker_are_taken_back(sim: SimulatorServer, make_broker: MakeBroker) -> None:
    broker = make_broker(workers=False, lease_seconds=1)
    client = broker.client()
    n = 100  # more than the provider window (64): some lines are leased, the rest wait
    batch = submit(client, [chat_line(i) for i in range(n)])
    _wait_for_second_lease(broker, batch.id)
    assert client.batches.retrieve(batch.id).status == "in_progress"
    assert sim.stats.requests == 0

    # the worker that held the messages is gone and its messages with it (as after a Redis flush)
    assert broker.procs.queue is not None
    broker.procs.queue.flush_all()
    broker.procs.start_workers(8)
    batch = wait_for(client, batch.id, timeout=20)

    assert batch.status == "completed"
    out, err = results_once(client, batch, chat_ids(n))
    assert err == [], [line["error"] for line in err[:3]]
    assert len(out) == n and all(line["response"]["status_code"] == 200 for line in out)
    assert sim.stats.successes >= n


def test_a_message_whose_lease_moved_on_is_dropped_so_every_line_is_called_and_counted_once(
        sim: SimulatorServer, make_broker: MakeBroker) -> None:
    broker = make_broker(workers=False, lease_seconds=1)
    client = broker.client()
    n = 40
    batch = submit(client, [chat_line(i) for i in range(n)])
    _wait_for_second_lease(broker, batch.id)

    # the stale messages of the first lease are still queued next to the new ones: they must not run again
    broker.procs.start_workers(8)
    assert wait_for(client, batch.id, timeout=20).status == "completed"
    assert broker.procs.queue is not None
    broker.procs.queue.join(broker.catalogue.get("sim").queue_name, timeout=10_000)  # late duplicates included
    batch = client.batches.retrieve(batch.id)

    assert sim.stats.requests == n, "no line was sent upstream twice"
    out, err = results_once(client, batch, chat_ids(n))
    assert err == [] and len(out) == n
    assert batch.usage is not None
    assert batch.usage.input_tokens == sum(line["response"]["body"]["usage"]["prompt_tokens"] for line in out)
    assert batch.usage.output_tokens == sum(line["response"]["body"]["usage"]["completion_tokens"] for line in out)
    assert batch.usage.input_tokens == sim.stats.prompt_tokens  # the upstream billed each line once


def test_storing_the_same_outcome_twice_counts_it_once(make_broker: MakeBroker) -> None:
    broker = make_broker(workers=False, planner=False)
    client = broker.client()
    batch = wait_for(client, submit(client, [chat_line(i) for i in range(3)]).id, statuses=("in_progress",))
    engine = broker.core.engine
    with engine.connect() as conn:
        first, second, _ = conn.execute(text("SELECT id FROM line WHERE batch_id = :b ORDER BY idx"),
                                        {"b": batch.id}).scalars()
    body = '{"object":"chat.completion","choices":[],"usage":{"prompt_tokens":5,"completion_tokens":7}}'
    ok = Outcome(first, batch.id, "succeeded", 200, body, "req_dup", input_tokens=5, output_tokens=7)

    assert store_outcomes(engine, [ok], time.time()).ended == 1
    assert store_outcomes(engine, [ok], time.time()).ended == 0
    assert store_outcomes(engine, [ok, ok], time.time()).ended == 0
    late_failure = Outcome(first, batch.id, "failed", 500, '{"error":{}}', "req_late")
    assert store_outcomes(engine, [late_failure], time.time()).ended == 0  # a line that ended stays as it ended
    fail = Outcome(second, batch.id, "failed", error_code="upstream_timeout", error_message="timed out")
    assert store_outcomes(engine, [fail, fail], time.time()).ended == 1  # twice in one write: still once

    batch = client.batches.retrieve(batch.id)
    assert batch.request_counts is not None
    assert (batch.request_counts.completed, batch.request_counts.failed, batch.request_counts.total) == (1, 1, 3)
    assert batch.usage is not None and (batch.usage.input_tokens, batch.usage.output_tokens) == (5, 7)
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT status, response_status, request_id, result_seq FROM line "
                                 "WHERE batch_id = :b ORDER BY idx"), {"b": batch.id}).all()
    assert [tuple(r) for r in rows] == [("succeeded", 200, "req_dup", 1), ("failed", None, None, 2),
                                        ("pending", None, None, None)]


def test_a_live_worker_keeps_its_lines_however_long_their_calls_take(sim: SimulatorServer,
                                                                     make_broker: MakeBroker) -> None:
    sim.config.slow_seconds = 5.0  # well past the lease: only renewal keeps the lines from being taken back
    broker = make_broker(lease_seconds=1.5)
    client = broker.client()
    batch = wait_for(client, submit(client, [chat_line(i, SIM_SLOW_MARKER) for i in range(3)]).id, timeout=20)

    out, err = results_once(client, batch, chat_ids(3))
    assert len(out) == 3 and err == []
    assert sim.stats.requests == 3, "no line was taken back and sent again while its call ran"


def test_a_renewal_racing_a_store_reports_only_leases_that_really_moved_on(
        make_broker: MakeBroker, caplog: pytest.LogCaptureFixture) -> None:
    broker = make_broker(workers=False, planner=False)
    client = broker.client()
    batch = wait_for(client, submit(client, [chat_line(i) for i in range(2)]).id, statuses=("in_progress",))
    engine = broker.core.engine
    until = time.time() + 60
    with engine.begin() as conn:
        answered, taken_back = conn.execute(
            text("UPDATE line SET status = 'queued', attempts = 1, lease_until = :u WHERE batch_id = :b RETURNING id"),
            {"u": until, "b": batch.id}).scalars().all()
    keeper = LeaseKeeper(engine, lease_seconds=60)
    for line_id in (answered, taken_back):
        assert keeper.take(LeasedLine(line_id, batch.id, batch.endpoint, "{}", 1, None, None, until))
    # one call ended and its outcome was stored while a renewal ran; the other line was taken back meanwhile
    keeper.answered([(answered, 1)])
    store_outcomes(engine, [Outcome(answered, batch.id, "succeeded", 200, "{}", "req_1")], time.time())
    with engine.begin() as conn:
        conn.execute(text("UPDATE line SET status = 'pending', lease_until = NULL WHERE id = :i"), {"i": taken_back})

    with caplog.at_level(logging.WARNING, logger="workers.leases"):
        asyncio.run(keeper.renew())

    assert not keeper.holds(answered) and not keeper.holds(taken_back)
    assert [r.getMessage() for r in caplog.records] == [
        "1 leases moved on before their lines ended here; those lines are not sent again"]


def test_a_call_that_fails_inside_the_worker_stops_holding_its_line(make_broker: MakeBroker) -> None:
    broker = make_broker(workers=False, planner=False)
    client = broker.client()
    batch = wait_for(client, submit(client, [chat_line(0)]).id, statuses=("in_progress",))
    engine = broker.core.engine
    until = time.time() + 60
    with engine.begin() as conn:
        [line_id] = conn.execute(text("UPDATE line SET status = 'queued', attempts = 1, lease_until = :u "
                                      "WHERE batch_id = :b RETURNING id"), {"u": until, "b": batch.id}).scalars()
    keeper = LeaseKeeper(engine, lease_seconds=60)
    assert keeper.take(LeasedLine(line_id, batch.id, batch.endpoint, "{}", 1, None, None, until))
    flow = ProviderFlow(engine, broker.catalogue.get("sim"), keeper, send=lambda chunk: None)

    async def broken_call() -> list[Outcome]:
        raise RuntimeError("a bug in the runner")

    async def run() -> None:
        flow.start([(broken_call(), [(line_id, 1)])])
        await asyncio.sleep(0.05)

    asyncio.run(run())

    assert not keeper.holds(line_id), "its lease is no longer renewed: it runs out and the planner takes it back"
