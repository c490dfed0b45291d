"""Batches that end early, or start late, as an SDK user sees them: cancel mid-run, expiry, ``not_before``."""

import time
from collections.abc import Callable

from openai.types import Batch

from simulator import SimulatorServer
from tests.harness import EmbeddedBroker, chat_ids, chat_line, results_once, submit, wait_for

MakeBroker = Callable[..., EmbeddedBroker]


def _completed(batch: Batch) -> int:
    return batch.request_counts.completed if batch.request_counts else 0


def test_cancel_mid_run_keeps_finished_lines_and_closes_the_rest(sim: SimulatorServer,
                                                                 make_broker: MakeBroker) -> None:
    sim.config.latency_median_ms = 200
    broker = make_broker(provider={"max_concurrency": 4})
    client = broker.client()
    n = 200
    batch = submit(client, [chat_line(i) for i in range(n)])
    running = wait_for(client, batch.id, until=lambda b: _completed(b) >= 12, timeout=20)
    assert running.status == "in_progress"

    cancelling = client.batches.cancel(batch.id)
    calls_at_cancel = sim.stats.requests
    assert cancelling.status == "cancelling" and cancelling.cancelling_at is not None
    done_before_cancel = _completed(cancelling)
    assert done_before_cancel >= 12

    batch = wait_for(client, batch.id, timeout=15)
    assert batch.status == "cancelled"
    assert batch.cancelled_at is not None and batch.cancelled_at >= cancelling.cancelling_at
    assert batch.completed_at is None and batch.expired_at is None
    out, err = results_once(client, batch, chat_ids(n))
    assert len(out) >= done_before_cancel, "lines finished before the cancel must be kept"
    assert len(out) < n // 2, "the cancel must have stopped the batch early"
    assert all(line["response"]["status_code"] == 200 for line in out)
    assert len(err) == n - len(out)
    for line in err:
        assert line["response"] is None
        assert line["error"]["code"] == "batch_cancelled" and line["error"]["message"]
    # at most the calls already in flight (one provider window) ran after the cancel, none after it ended
    assert sim.stats.requests - calls_at_cancel <= 2 * 4
    assert sim.stats.requests == sim.stats.successes == len(out)
    calls_at_end = sim.stats.requests
    time.sleep(0.5)
    assert sim.stats.requests == calls_at_end
    assert client.batches.retrieve(batch.id).status == "cancelled"


def test_batch_past_its_window_expires_with_unrun_lines_in_error_file(sim: SimulatorServer,
                                                                      make_broker: MakeBroker) -> None:
    sim.config.latency_median_ms = 300
    broker = make_broker(provider={"max_concurrency": 2}, min_window_seconds=1)
    client = broker.client()
    n = 60  # at ~6 lines/s this needs ~10 s; the window is 2 s
    batch = submit(client, [chat_line(i) for i in range(n)], completion_window="2s")
    assert batch.expires_at is not None and batch.expires_at - batch.created_at == 2

    batch = wait_for(client, batch.id, timeout=10)
    assert batch.status == "expired"
    assert batch.expired_at is not None and batch.expired_at >= batch.expires_at
    assert batch.completed_at is None
    out, err = results_once(client, batch, chat_ids(n))
    assert 0 < len(out) < n
    assert all(line["response"]["status_code"] == 200 for line in out)
    expired = [line for line in err if line["error"] and line["error"]["code"] == "batch_expired"]
    assert len(expired) == len(err) == n - len(out)
    assert all(line["response"] is None for line in expired)


def test_not_before_holds_dispatch_until_then(sim: SimulatorServer, broker: EmbeddedBroker) -> None:
    client = broker.client()
    not_before = int(time.time()) + 2
    batch = submit(client, [chat_line(i) for i in range(10)], not_before=not_before)
    assert batch.model_extra is not None and batch.model_extra.get("not_before") == not_before

    while time.time() < not_before - 0.1:
        assert sim.stats.requests == 0, "a line was sent before not_before"
        assert client.batches.retrieve(batch.id).status in ("validating", "in_progress")
        time.sleep(0.05)
    while sim.stats.requests == 0:
        assert time.time() < not_before + 5, "nothing was sent after not_before"
        time.sleep(0.01)
    assert time.time() >= not_before

    batch = wait_for(client, batch.id, timeout=10)
    assert batch.status == "completed"
    assert batch.completed_at is not None and batch.completed_at >= not_before
    out, err = results_once(client, batch, chat_ids(10))
    assert len(out) == 10 and err == []
    assert batch.expires_at is not None and batch.expires_at == not_before + 24 * 3600  # the window starts then
