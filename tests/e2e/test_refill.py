"""Slots refill per upstream call: a slow line holds its own slot only, never the slots of lines sent with it."""

from sqlalchemy import text

from broker.db import make_engine
from simulator import SimulatorServer
from simulator.responses import SIM_SLOW_MARKER
from tests.e2e.conftest import StartBroker
from tests.harness import MakeBroker, chat_ids, chat_line, provider, results_once, submit, wait_for

SLOW_SECONDS = 8.0  #: the slow line's latency: far longer than the fast lines take together


def test_fast_lines_finish_while_a_slow_line_sent_with_them_still_runs(start_broker: StartBroker,
                                                                       sim: SimulatorServer) -> None:
    sim.config.slow_seconds = SLOW_SECONDS
    broker = start_broker(provider("sim", sim, max_concurrency=2))
    client = broker.client()
    lines = [chat_line(0, f"take your time {SIM_SLOW_MARKER}")] + [chat_line(i) for i in range(1, 31)]
    batch = submit(client, lines)

    # the slow line and the first fast one leave in one message; the other slot refills per call meanwhile
    while_slow = wait_for(client, batch.id, until=lambda b: b.request_counts is not None
                          and b.request_counts.completed >= 30, timeout=SLOW_SECONDS * 0.75)
    assert while_slow.status == "in_progress" and while_slow.request_counts is not None
    assert while_slow.request_counts.completed == 30, "only the slow line is still out"

    done = wait_for(client, batch.id, timeout=SLOW_SECONDS * 2)
    out, err = results_once(client, done, chat_ids(31))
    assert len(out) == 31 and err == []
    assert sim.stats.max_in_flight <= 2, "the provider's window held"


def test_a_stopping_worker_hands_its_running_lines_back_at_once(start_broker: StartBroker,
                                                                sim: SimulatorServer) -> None:
    sim.config.slow_seconds = 30.0
    broker = start_broker(provider("sim", sim, max_concurrency=2))
    client = broker.client()
    batch = submit(client, [chat_line(i, SIM_SLOW_MARKER) for i in range(4)])
    wait_for(client, batch.id, until=lambda b: sim.stats.in_flight == 2, timeout=10)

    broker.stop()  # long before the lease would run out
    engine = make_engine(broker.settings.database_url)
    try:
        with engine.connect() as conn:
            lines = conn.execute(text("SELECT status, lease_until, attempts FROM line ORDER BY idx")).all()
    finally:
        engine.dispose()
    assert [tuple(line) for line in lines] == [("pending", None, 0)] * 4, "ready for another worker, no attempt spent"


def test_a_batch_completes_as_its_last_line_ends_not_at_the_planners_next_tick(make_broker: MakeBroker) -> None:
    broker = make_broker(planner_interval=60.0)  # only a wake-up moves the planner now: a new batch, a last line
    client = broker.client()
    batch = submit(client, [chat_line(i) for i in range(200)])  # more than one window (64): refills end it

    done = wait_for(client, batch.id, timeout=20)

    assert done.status == "completed"
    out, err = results_once(client, done, chat_ids(200))
    assert len(out) == 200 and err == []
