"""An Anthropic provider behind the OpenAI batch contract: chat lines translated to Messages and back, in real time
and through Message Batches; the broker's user never sees Anthropic's shapes."""

from typing import Any

import pytest

from broker.catalogue import ModelSpec, NativeBatchConfig, ProviderConfig
from simulator import SimulatorServer
from tests.e2e.conftest import StartBroker
from tests.harness import chat_line, embedding_line, results_once, submit, usage_by_route, wait_for

PUBLIC, UPSTREAM = "claude-haiku", "claude-3-5-haiku-latest"
INPUT_PRICE, OUTPUT_PRICE = 0.80, 4.00


def anthropic(sim: SimulatorServer, **fields: Any) -> ProviderConfig:
    return ProviderConfig(name="anthropic", kind="anthropic", base_url=sim.base_url,
                          models={PUBLIC: ModelSpec(input=INPUT_PRICE, output=OUTPUT_PRICE, upstream_model=UPSTREAM)},
                          **fields)


def claude_line(i: int) -> dict[str, Any]:
    line = chat_line(i, max_tokens=32)
    line["body"]["model"] = PUBLIC
    line["body"]["messages"].insert(0, {"role": "system", "content": "Answer briefly."})
    return line


def cost_of(out: list[dict[str, Any]], share: float = 1.0) -> float:
    usage = [line["response"]["body"]["usage"] for line in out]
    return sum(u["prompt_tokens"] * INPUT_PRICE + u["completion_tokens"] * OUTPUT_PRICE for u in usage) / 1e6 * share


def test_chat_lines_run_on_anthropic_in_real_time(start_broker: StartBroker, sim: SimulatorServer) -> None:
    broker = start_broker(anthropic(sim))
    client = broker.client()
    batch = wait_for(client, submit(client, [claude_line(i) for i in range(20)]).id)
    out, err = results_once(client, batch, [f"req-{i}" for i in range(20)])
    assert not err and sim.stats.by_endpoint.get("/v1/messages") == 20
    body = out[0]["response"]["body"]
    assert body["object"] == "chat.completion" and body["model"] == UPSTREAM
    assert body["choices"][0]["message"]["role"] == "assistant" and body["choices"][0]["message"]["content"]
    assert body["choices"][0]["finish_reason"] in ("stop", "length") and body["usage"]["prompt_tokens"] > 0
    assert (batch.model_extra or {})["cost_usd"] == pytest.approx(cost_of(out), rel=1e-6)


def test_chat_lines_go_through_message_batches_at_the_discount(start_broker: StartBroker,
                                                               sim: SimulatorServer) -> None:
    sim.config.batch_turnaround_seconds = 0.5
    native = NativeBatchConfig(discount=0.5, turnaround_seconds=30, poll_seconds=0.2)
    broker = start_broker(anthropic(sim, native_batch=native))
    client = broker.client()
    created = submit(client, [claude_line(i) for i in range(30)], completion_window="1h")
    batch = wait_for(client, created.id)
    out, err = results_once(client, batch, [f"req-{i}" for i in range(30)])
    assert not err and sim.stats.native_batches == 1 and sim.stats.by_endpoint.get("/v1/messages", 0) == 0
    assert out[0]["response"]["body"]["object"] == "chat.completion"
    assert usage_by_route(broker) == {"native_batch": 30}
    assert (batch.model_extra or {})["cost_usd"] == pytest.approx(cost_of(out, 0.5), rel=1e-6)


def test_an_endpoint_anthropic_cannot_serve_fails_validation(start_broker: StartBroker, sim: SimulatorServer) -> None:
    broker = start_broker(anthropic(sim))
    client = broker.client()
    line = embedding_line(0)
    line["body"]["model"] = PUBLIC
    batch = wait_for(client, submit(client, [line], endpoint="/v1/embeddings").id)
    assert batch.status == "failed" and batch.errors is not None
    assert "not available for /v1/embeddings" in (batch.errors.data[0].message or "")
