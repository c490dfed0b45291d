"""Release-time ranking seen from outside: urgent work overtakes a backlog; projects share a provider fairly."""

import time

from simulator import SimulatorServer
from tests.harness import EmbeddedBroker, chat_line, submit, wait_for


def _slow(sim: SimulatorServer) -> None:
    sim.config.latency_median_ms, sim.config.latency_sigma = 40, 0.1


def test_urgent_batch_overtakes_a_low_priority_backlog(make_broker, sim: SimulatorServer) -> None:  # type: ignore[no-untyped-def]
    _slow(sim)
    broker: EmbeddedBroker = make_broker(provider={"max_concurrency": 2})
    client = broker.client()
    backlog = submit(client, [chat_line(i) for i in range(200)], priority="low")
    wait_for(client, backlog.id, statuses=("in_progress",))
    time.sleep(0.3)  # the backlog is running
    urgent = wait_for(client, submit(client, [chat_line(i) for i in range(6)], priority="urgent").id)
    backlog_now = client.batches.retrieve(backlog.id)
    assert urgent.status == "completed"
    assert backlog_now.status == "in_progress" and backlog_now.request_counts is not None
    assert backlog_now.request_counts.completed < 100, "the urgent batch waited behind the backlog"


def test_a_small_project_is_not_starved_by_a_big_one(make_broker, sim: SimulatorServer) -> None:  # type: ignore[no-untyped-def]
    _slow(sim)
    broker: EmbeddedBroker = make_broker(provider={"max_concurrency": 4})
    big_client, small_client = broker.client(), broker.client(broker.new_key("small-team"))
    big = submit(big_client, [chat_line(i) for i in range(400)])
    wait_for(big_client, big.id, statuses=("in_progress",))
    small = wait_for(small_client, submit(small_client, [chat_line(i) for i in range(20)]).id)
    big_now = big_client.batches.retrieve(big.id)
    assert small.status == "completed" and big_now.request_counts is not None
    # with half the provider each, the big project got about as many lines done meanwhile, not all of them
    assert big_now.request_counts.completed < 120, big_now.request_counts
