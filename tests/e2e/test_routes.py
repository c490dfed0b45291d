"""Routes: a provider's native batch API and off-peak windows, chosen when cheaper and in time; costs follow them."""

import datetime as dt
import time
from typing import Any

import pytest
from sqlalchemy import text

from broker.catalogue import NativeBatchConfig, OffPeakWindow
from simulator import SimulatorServer
from tests.e2e.conftest import StartBroker
from tests.harness import (
    CHAT_MODEL,
    INPUT_PRICE,
    OUTPUT_PRICE,
    EmbeddedBroker,
    chat_line,
    provider,
    results_once,
    submit,
    upload,
    usage_by_route,
    wait_for,
)

NATIVE = NativeBatchConfig(discount=0.5, turnaround_seconds=30, poll_seconds=0.2)
def full_price(line: dict[str, Any]) -> float:
    usage = line["response"]["body"]["usage"]
    return float(usage["prompt_tokens"] * INPUT_PRICE + usage["completion_tokens"] * OUTPUT_PRICE) / 1e6


def run(broker: EmbeddedBroker, n: int, window: str = "1h", **extra: Any) -> tuple[Any, list[dict[str, Any]]]:
    client = broker.client()
    created = submit(client, [chat_line(i) for i in range(n)], completion_window=window, **extra)
    batch = wait_for(client, created.id, timeout=60)
    out, err = results_once(client, batch, [f"req-{i}" for i in range(n)])
    assert not err, err[:3]
    return batch, out


def test_native_batch_route_is_taken_when_cheaper_and_costs_half(start_broker: StartBroker,
                                                                 sim: SimulatorServer) -> None:
    sim.config.batch_turnaround_seconds = 0.5
    broker = start_broker(provider("openai", sim, native_batch=NATIVE))
    batch, out = run(broker, 40)
    extra = batch.model_extra or {}
    assert extra["routes"][CHAT_MODEL]["route"] == "native_batch"
    assert sim.stats.native_batches == 1 and sim.stats.native_batch_lines == 40
    assert sim.stats.by_endpoint.get("/v1/chat/completions", 0) == 0  # nothing ran in real time
    assert extra["cost_usd"] == pytest.approx(sum(full_price(line) for line in out) * 0.5, rel=1e-6)
    assert usage_by_route(broker) == {"native_batch": 40}


def test_lines_a_remote_batch_fails_run_again_in_real_time(start_broker: StartBroker, sim: SimulatorServer) -> None:
    sim.config.batch_turnaround_seconds = 0.5
    sim.config.error_rate, sim.config.error_kinds = 0.3, ("500",)
    broker = start_broker(provider("openai", sim, native_batch=NATIVE), max_attempts=20)
    batch, out = run(broker, 60)
    failed_remotely = sim.stats.native_batch_failed_lines
    assert 0 < failed_remotely < 60
    routes = usage_by_route(broker)
    assert routes == {"native_batch": 60 - failed_remotely, "realtime": failed_remotely}
    assert (batch.model_extra or {})["cost_usd"] == pytest.approx(
        _expected_mixed_cost(broker, out), rel=1e-6)


def _expected_mixed_cost(broker: EmbeddedBroker, out: list[dict[str, Any]]) -> float:
    """Every line at full price, less half for those the native batch answered."""
    with broker.core.engine.connect() as conn:
        native = {r[0] for r in conn.execute(text(
            "SELECT custom_id FROM line WHERE status = 'succeeded' AND remote_batch_id IS NOT NULL"))}
    return sum(full_price(line) * (0.5 if line["custom_id"] in native else 1.0) for line in out)


def test_an_expired_remote_batch_hands_its_unfinished_lines_to_real_time(start_broker: StartBroker,
                                                                       sim: SimulatorServer) -> None:
    sim.config.batch_turnaround_seconds, sim.config.batch_expire_after_seconds = 4.0, 1.0
    broker = start_broker(provider("openai", sim, native_batch=NATIVE))
    batch, out = run(broker, 40)
    assert batch.status == "completed" and len(out) == 40
    routes = usage_by_route(broker)
    assert routes.get("realtime", 0) > 0 and routes.get("native_batch", 0) > 0
    assert sum(routes.values()) == 40


def test_forced_realtime_route_skips_the_batch_api(start_broker: StartBroker, sim: SimulatorServer) -> None:
    broker = start_broker(provider("openai", sim, native_batch=NATIVE))
    batch, _ = run(broker, 10, route="realtime")
    assert (batch.model_extra or {})["routes"][CHAT_MODEL]["route"] == "realtime"
    assert sim.stats.native_batches == 0 and usage_by_route(broker) == {"realtime": 10}


def test_a_route_that_cannot_meet_the_window_fails_validation(start_broker: StartBroker,
                                                              sim: SimulatorServer) -> None:
    slow = NativeBatchConfig(turnaround_seconds=86_400)
    broker = start_broker(provider("openai", sim, native_batch=slow))
    client = broker.client()
    batch = wait_for(client, submit(client, [chat_line(0)], route="native_batch").id)
    assert batch.status == "failed" and batch.errors is not None
    assert batch.errors.data[0].code == "route_infeasible" and "native batch" in (batch.errors.data[0].message or "")
    auto = wait_for(client, submit(client, [chat_line(0)]).id)  # auto: the 24h window is too short, real time it is
    assert auto.status == "completed" and (auto.model_extra or {})["routes"][CHAT_MODEL]["route"] == "realtime"


def test_off_peak_route_waits_for_the_window_and_pays_its_price(start_broker: StartBroker,
                                                                sim: SimulatorServer) -> None:
    opens = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=3)
    window = OffPeakWindow(start=opens.strftime("%H:%M:%S"),
                           end=(opens + dt.timedelta(hours=1)).strftime("%H:%M:%S"), multiplier=0.3)
    broker = start_broker(provider("nightly", sim, off_peak=[window]))
    client = broker.client()
    created = submit(client, [chat_line(i) for i in range(20)])
    batch = wait_for(client, created.id, statuses=("in_progress",))
    plan = (batch.model_extra or {})["routes"][CHAT_MODEL]
    assert plan["route"] == "off_peak" and plan["not_before"] == pytest.approx(opens.timestamp(), abs=1)
    time.sleep(max(0.0, opens.timestamp() - time.time() - 1))
    assert sim.stats.by_endpoint.get("/v1/chat/completions", 0) == 0  # held until the window opens
    batch = wait_for(client, created.id, timeout=30)
    out, _ = results_once(client, batch, [f"req-{i}" for i in range(20)])
    assert min(line["response"]["body"]["created"] for line in out) >= int(opens.timestamp())
    assert (batch.model_extra or {})["cost_usd"] == pytest.approx(sum(full_price(line) for line in out) * 0.3,
                                                                  rel=1e-6)
    assert usage_by_route(broker) == {"off_peak": 20}


def test_estimate_lists_every_route_with_its_price(start_broker: StartBroker, sim: SimulatorServer) -> None:
    window = OffPeakWindow(start="01:00", end="05:00", multiplier=0.4)
    broker = start_broker(provider("openai", sim, native_batch=NATIVE), provider("nightly", sim, off_peak=[window]))
    client = broker.client()
    file_id = upload(client, [chat_line(i) for i in range(10)])
    estimate: Any = client.post(f"/files/{file_id}/estimate", cast_to=object)
    routes = {(r["provider"], r["route"]): r["cost_usd"] for r in estimate["models"][0]["routes"]}
    realtime = routes[("openai", "realtime")]
    assert routes[("openai", "native_batch")] == pytest.approx(realtime * 0.5, rel=1e-4)
    assert routes[("nightly", "off_peak")] == pytest.approx(realtime * 0.4, rel=1e-4)
    assert estimate["cost_usd"] == pytest.approx(realtime * 0.4, rel=1e-4)  # the cheapest route

    deployments = (client.models.retrieve(CHAT_MODEL).model_extra or {})["deployments"]
    assert [(d["provider"], d["batch_discount"]) for d in deployments] == [("openai", 0.5), ("nightly", None)]
    assert deployments[1]["off_peak"][0] == {"days": ["mon", "tue", "wed", "thu", "fri", "sat", "sun"],
                                             "start": "01:00", "end": "05:00", "multiplier": 0.4}


def test_native_batches_send_only_what_max_cost_usd_can_pay_for(start_broker: StartBroker,
                                                                sim: SimulatorServer) -> None:
    sim.config.batch_turnaround_seconds = 0.3
    broker = start_broker(provider("openai", sim, native_batch=NATIVE, max_concurrency=2))
    client = broker.client()
    lines = [chat_line(i, max_tokens=16) for i in range(100)]
    probe = wait_for(client, submit(client, lines[:1]).id)
    expected = (probe.model_extra or {})["routes"][CHAT_MODEL]["line_cost_usd"]  # the route's estimate per line
    cap = 20 * expected
    batch = wait_for(client, submit(client, lines, completion_window="1h", max_cost_usd=cap).id)
    out, err = results_once(client, batch, [f"req-{i}" for i in range(100)])
    cost = (batch.model_extra or {})["cost_usd"]
    assert 20 <= len(out) < 100 and {line["error"]["code"] for line in err} == {"budget_exceeded"}
    assert cost <= cap + 2 * 2 * expected  # past the cap: at most the two real-time calls in flight (full price)
    assert sim.stats.native_batch_lines - 1 >= 20  # the first twenty went at the discount (the probe was one)


def test_cancelling_a_batch_cancels_its_remote_batch_and_keeps_what_finished(start_broker: StartBroker,
                                                                              sim: SimulatorServer) -> None:
    sim.config.batch_turnaround_seconds = 20.0  # lines finish one by one over 20 s
    broker = start_broker(provider("openai", sim, native_batch=NATIVE))
    client = broker.client()
    created = submit(client, [chat_line(i) for i in range(40)])
    deadline = time.monotonic() + 10
    while sim.stats.native_batches == 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(1.5)  # a few lines done remotely
    client.batches.cancel(created.id)
    batch = wait_for(client, created.id, timeout=10)
    assert batch.status == "cancelled"
    out, err = results_once(client, batch, [f"req-{i}" for i in range(40)])
    assert 0 < len(out) < 40 and {line["error"]["code"] for line in err} == {"batch_cancelled"}
    assert usage_by_route(broker) == {"native_batch": len(out)}  # finished remote lines are kept and paid for
    assert sim.stats.by_endpoint.get("/v1/chat/completions", 0) == 0  # nothing was rerun in real time
