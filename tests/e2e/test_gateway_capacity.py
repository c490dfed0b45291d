"""Interactive calls and batch lines on one capacity budget: interactive first, batches fill what is left, and a
call that cannot get capacity in time is answered 429 with Retry-After instead of meeting the provider's 429."""

import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import openai
from sqlalchemy import text

from simulator import SimulatorServer
from simulator.responses import SIM_SLOW_MARKER
from tests.e2e.conftest import StartBroker
from tests.harness import CHAT_MODEL, EmbeddedBroker, chat_line, provider, submit, wait_for

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


def test_waiting_calls_are_admitted_by_priority_then_flex_then_batch_lines(start_broker: StartBroker,
                                                                           sim: SimulatorServer) -> None:
    """With the provider full, the calls that wait (queued here in the reverse of the expected order) reach it by
    ``priority``; ``service_tier: "flex"`` behind every interactive call, even an urgent one, yet ahead of batch
    lines that were ready all along."""
    sim.app.apply_config({"slow_seconds": 3})
    broker = start_broker(provider("sim", sim, max_concurrency=1))
    client = broker.client()
    waiting = queued_calls(broker)
    with ThreadPoolExecutor(5) as pool:
        blocker = pool.submit(ask, client, SIM_SLOW_MARKER)  # holds the provider's one slot for 3 s
        wait_until(lambda: sim.stats.in_flight == 1)
        batch = submit(client, [chat_line(i) for i in range(2)])
        wait_for(client, batch.id, until=lambda b: b.status == "in_progress")
        calls = []
        for n, (prompt, extra) in enumerate([("flex", {"priority": "urgent", "service_tier": "flex"}),
                                             ("low", {"priority": "low"}), ("normal", {}),
                                             ("urgent", {"priority": "urgent"})]):
            calls.append(pool.submit(ask, client, prompt, **extra))
            wait_until(lambda n=n: waiting() == n + 1)  # type: ignore[misc]
        assert sim.stats.in_flight == 1 and blocker.running(), "every call queued while the blocker ran"
        assert [c.result() for c in calls] == ["flex", "low", "normal", "urgent"]
    assert wait_for(client, batch.id).status == "completed"
    arrived = list(sim.stats.prompts)
    assert arrived[:1] == [SIM_SLOW_MARKER] and arrived[1:5] == ["urgent", "normal", "low", "flex"], arrived
    assert sorted(arrived[5:]) == ["hello 0", "hello 1"], arrived


def ask(client: openai.OpenAI, prompt: str, **extra: Any) -> str:
    service_tier = extra.pop("service_tier", None)
    answer = client.chat.completions.create(model=CHAT_MODEL, messages=[{"role": "user", "content": prompt}],
                                            service_tier=service_tier, extra_body=extra)
    assert answer.choices[0].message.content
    return prompt


def queued_calls(broker: EmbeddedBroker) -> Callable[[], int]:
    """How many interactive calls wait for a slot (their rows in SQL)."""
    def count() -> int:
        with broker.core.engine.connect() as conn:
            return int(conn.execute(text("SELECT count(*) FROM interactive_call WHERE state = 'waiting'"))
                       .scalar_one())
    return count


def wait_until(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)
