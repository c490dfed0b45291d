"""max_cost_usd: dispatch stops at the cap; the rest of the batch ends in the error file as budget_exceeded."""

import pytest

from simulator import SimulatorServer
from tests.harness import EmbeddedBroker, chat_line, read_jsonl, results_once, submit, wait_for

LINE_COST = (8 * 0.15 + 8 * 0.60) / 1e6  #: about what one harness chat line costs at the harness catalogue's prices


def test_dispatch_stops_at_max_cost_and_overspends_at_most_the_calls_in_flight(
    make_broker, sim: SimulatorServer,  # type: ignore[no-untyped-def]
) -> None:
    sim.config.latency_median_ms, sim.config.latency_sigma = 20, 0.1
    broker: EmbeddedBroker = make_broker(provider={"max_concurrency": 2})
    client = broker.client()
    cap = 10 * LINE_COST
    batch = wait_for(client, submit(client, [chat_line(i) for i in range(100)], max_cost_usd=cap).id)
    assert batch.status == "completed"
    out, err = results_once(client, batch, [f"req-{i}" for i in range(100)])
    cost = (batch.model_extra or {})["cost_usd"]
    line_costs = [(u["prompt_tokens"] * 0.15 + u["completion_tokens"] * 0.60) / 1e6
                  for u in (line["response"]["body"]["usage"] for line in out)]
    assert cost == pytest.approx(sum(line_costs), rel=1e-6) and cost >= cap
    assert cost - cap <= 2 * max(line_costs)  # past the cap, at most the 2 calls that were in flight
    assert sim.stats.requests == len(out) < 100
    assert {line["error"]["code"] for line in err} == {"budget_exceeded"}
    assert read_jsonl(client, batch.error_file_id)[0]["response"] is None
