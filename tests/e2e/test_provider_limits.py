"""Shared rate limits in the embedded broker: the upstream's limit is respected, learned, and shown."""

import httpx

from simulator import SimulatorServer
from tests.harness import EmbeddedBroker, chat_line, publish_provider_state, submit, wait_for


def _providers(broker: EmbeddedBroker) -> dict[str, dict]:  # type: ignore[type-arg]
    resp = httpx.get(f"{broker.base_url}/providers", headers={"Authorization": f"Bearer {broker.key}"})
    assert resp.status_code == 200
    return {p["id"]: p for p in resp.json()["data"]}


def test_configured_rpm_is_never_exceeded_and_state_is_visible(make_broker, sim: SimulatorServer) -> None:  # type: ignore[no-untyped-def]
    sim.config.rpm = 600  # 10 / s, a minute's burst
    broker: EmbeddedBroker = make_broker(provider={"rpm": 600})
    client = broker.client()
    batch = wait_for(client, submit(client, [chat_line(i) for i in range(150)]).id)
    assert batch.status == "completed" and batch.request_counts and batch.request_counts.completed == 150
    assert sim.stats.rate_limited == 0, "the broker sent more than the provider allows"
    assert sim.stats.requests == 150
    publish_provider_state(broker)
    state = _providers(broker)["sim"]
    assert state["configured"]["rpm"] == 600 and state["in_force"]["rpm"] <= 600
    assert state["calls_last_minute"] == 150 and state["rate_limited_last_minute"] == 0
    assert state["latency_ms"]["p50"] is not None and state["workers"] == 1
    assert state["in_flight"] == 0


def test_a_hidden_lower_limit_is_learned(make_broker, sim: SimulatorServer) -> None:  # type: ignore[no-untyped-def]
    sim.config.rpm = 300  # the provider really allows 5 / s
    broker: EmbeddedBroker = make_broker(provider={"rpm": 1500})  # the catalogue says 5x more
    client = broker.client()
    batch = wait_for(client, submit(client, [chat_line(i) for i in range(120)]).id, timeout=90)
    assert batch.status == "completed" and batch.request_counts and batch.request_counts.completed == 120
    publish_provider_state(broker)
    state = _providers(broker)["sim"]
    assert state["in_force"]["rpm"] <= 300, state  # learned from x-ratelimit-limit-requests and 429s
