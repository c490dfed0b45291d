"""Interactive calls and batch lines on one capacity budget: interactive first, batches fill what is left, and a
call that cannot get capacity in time is answered 429 with Retry-After instead of meeting the provider's 429."""

import httpx

from simulator import SimulatorServer
from tests.e2e.conftest import StartBroker
from tests.harness import CHAT_MODEL, chat_line, provider, submit, wait_for

MESSAGES = [{"role": "user", "content": "Are you there?"}]


def test_interactive_call_is_admitted_ahead_of_a_saturating_batch(start_broker: StartBroker,
                                                                 sim: SimulatorServer) -> None:
    sim.app.apply_config({"latency_median_ms": 200, "latency_sigma": 0})
    broker = start_broker(provider("sim", sim, max_concurrency=4))
    client = broker.client()
    batch = submit(client, [chat_line(i) for i in range(120)])  # ~6 s of work at 4 calls of 200 ms
    before = wait_for(client, batch.id, until=lambda b: b.request_counts is not None
                      and b.request_counts.completed >= 8).request_counts
    raw = client.chat.completions.with_raw_response.create(model=CHAT_MODEL, messages=MESSAGES)  # type: ignore[arg-type]
    after = client.batches.retrieve(batch.id).request_counts
    assert raw.parse().choices[0].message.content and raw.headers["x-broker-provider"] == "sim"
    assert before is not None and after is not None
    # behind the batch it would have waited for ~100 lines; ahead of it, for one batch call to end
    assert after.completed - before.completed <= 12, (before, after)
    assert sim.stats.max_in_flight <= 4, "the interactive call took a batch slot, never a fifth one"
    assert wait_for(client, batch.id).status == "completed"


def test_no_slot_in_time_is_429_with_retry_after(start_broker: StartBroker, sim: SimulatorServer) -> None:
    sim.app.apply_config({"latency_median_ms": 3000, "latency_sigma": 0})
    broker = start_broker(provider("sim", sim, max_concurrency=1))
    client = broker.client()
    batch = submit(client, [chat_line(i) for i in range(3)])
    wait_for(client, batch.id, until=lambda b: sim.stats.in_flight == 1, timeout=10)
    with broker.http() as http:
        resp = http.post("/chat/completions", json={"model": CHAT_MODEL, "messages": MESSAGES},
                         headers={"x-broker-max-wait": "0.3"})
    assert resp.status_code == 429 and int(resp.headers["retry-after"]) >= 1
    assert resp.json()["error"]["type"] == "rate_limit_error"
    assert sim.stats.requests == 1, "nothing reached the provider beyond the batch call in flight"


def test_over_the_rate_limit_is_our_429_never_the_providers(start_broker: StartBroker, sim: SimulatorServer) -> None:
    sim.app.apply_config({"rpm": 60})
    broker = start_broker(provider("sim", sim, rpm=60))  # one request a second, a burst of one
    answers = []
    with broker.http() as http:
        for _ in range(3):
            answers.append(http.post("/chat/completions", json={"model": CHAT_MODEL, "messages": MESSAGES},
                                      headers={"x-broker-max-wait": "0.1"}))
    assert [r.status_code for r in answers] == [200, 429, 429]
    assert all(r.json()["error"]["code"] == "rate_limit_exceeded" for r in answers[1:])
    assert sim.stats.requests == 1 and sim.stats.rate_limited == 0


def test_bad_max_wait_header_is_400(start_broker: StartBroker, sim: SimulatorServer) -> None:
    broker = start_broker(provider("sim", sim))
    resp = httpx.post(broker.base_url + "/chat/completions", json={"model": CHAT_MODEL, "messages": MESSAGES},
                      headers={"Authorization": f"Bearer {broker.key}", "x-broker-max-wait": "soon"})
    assert resp.status_code == 400 and resp.json()["error"]["param"] == "x-broker-max-wait"
