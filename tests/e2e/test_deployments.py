"""Deployments of one model on several providers: ordered fallback, region constraints, project policies."""

import time
from typing import Any

import pytest
from typer.testing import CliRunner

from cli.main import app as cli_app
from providers import circuit
from simulator import SimulatorServer
from tests.e2e.conftest import StartBroker
from tests.harness import CHAT_MODEL, chat_line, provider, read_jsonl, results_once, submit, usage_by_provider, wait_for


def chat_calls(sim: SimulatorServer) -> int:
    return sim.stats.by_endpoint.get("/v1/chat/completions", 0)


def test_lines_fall_back_to_the_next_deployment_while_the_first_answers_503(
    start_broker: StartBroker, sim: SimulatorServer, other_sim: SimulatorServer, monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(circuit, "CIRCUIT_COOLDOWN_SECONDS", 1.0)
    sim.config.error_rate, sim.config.error_kinds = 1.0, ("503",)  # the first deployment is down
    broker = start_broker(provider("primary", sim, max_concurrency=8), provider("backup", other_sim))
    client = broker.client()
    batch = wait_for(client, submit(client, [chat_line(i) for i in range(200)]).id)
    out, err = results_once(client, batch, [f"req-{i}" for i in range(200)])
    assert len(out) == 200 and not err
    assert usage_by_provider(broker) == {"backup": 200}
    # the circuit breaker stops calling the failing provider: far fewer than one try per line
    assert sim.stats.by_status.get(503, 0) < 100

    sim.config.error_rate = 0.0  # it comes back: after the cooldown, new work goes to the first deployment again
    time.sleep(circuit.CIRCUIT_COOLDOWN_SECONDS + 0.2)
    again = wait_for(client, submit(client, [chat_line(i) for i in range(50)]).id)
    assert again.status == "completed" and usage_by_provider(broker)["primary"] == 50


def test_region_constraint_excludes_a_provider(start_broker: StartBroker, sim: SimulatorServer,
                                               other_sim: SimulatorServer) -> None:
    broker = start_broker(provider("us-east", sim, regions=["us"]), provider("eu-west", other_sim, regions=["eu"]))
    client = broker.client()
    batch = wait_for(client, submit(client, [chat_line(i) for i in range(20)], constraints={"regions": ["eu"]}).id)
    assert batch.status == "completed" and (batch.model_extra or {})["routes"][CHAT_MODEL]["provider"] == "eu-west"
    assert chat_calls(sim) == 0 and chat_calls(other_sim) == 20

    nowhere = wait_for(client, submit(client, [chat_line(i) for i in range(3)], constraints={"regions": ["ap"]}).id)
    assert nowhere.status == "failed" and nowhere.errors is not None
    first = nowhere.errors.data[0]
    assert first.code == "no_eligible_deployment" and first.line == 1
    assert "'ap'" in (first.message or "") and "us-east (regions: us)" in (first.message or "")


def test_project_default_regions_apply_unless_the_batch_says_otherwise(
    start_broker: StartBroker, sim: SimulatorServer, other_sim: SimulatorServer, monkeypatch: pytest.MonkeyPatch,
) -> None:
    broker = start_broker(provider("us-east", sim, regions=["us"]), provider("eu-west", other_sim, regions=["eu"]))
    monkeypatch.setenv("BROKER_URL", broker.base_url)
    monkeypatch.setenv("BROKER_ADMIN_KEY", broker.admin_key)
    result = CliRunner().invoke(cli_app, ["projects", "set", "default", "--regions", "eu"])
    assert result.exit_code == 0, result.output
    client = broker.client()
    batch = wait_for(client, submit(client, [chat_line(i) for i in range(5)]).id)
    assert (batch.model_extra or {})["routes"][CHAT_MODEL]["provider"] == "eu-west"
    own = wait_for(client, submit(client, [chat_line(i) for i in range(5)], constraints={"regions": ["us"]}).id)
    assert (own.model_extra or {})["routes"][CHAT_MODEL]["provider"] == "us-east"


def test_monthly_budget_stops_dispatch_and_closes_open_lines(
    start_broker: StartBroker, sim: SimulatorServer, monkeypatch: pytest.MonkeyPatch,
) -> None:
    sim.config.latency_median_ms, sim.config.latency_sigma = 20, 0.1
    broker = start_broker(provider("openai", sim, max_concurrency=2))
    monkeypatch.setenv("BROKER_URL", broker.base_url)
    monkeypatch.setenv("BROKER_ADMIN_KEY", broker.admin_key)
    client = broker.client()
    first = wait_for(client, submit(client, [chat_line(i) for i in range(10)]).id)
    spent = (first.model_extra or {})["cost_usd"]
    line_cost = spent / 10
    budget = spent + 10 * line_cost  # room for about ten more lines this month
    result = CliRunner().invoke(cli_app, ["projects", "set", "default", "--monthly-budget-usd", str(budget)])
    assert result.exit_code == 0, result.output

    batch = wait_for(client, submit(client, [chat_line(i) for i in range(100)]).id)
    out, err = results_once(client, batch, [f"req-{i}" for i in range(100)])
    assert 5 <= len(out) < 100 and {line["error"]["code"] for line in err} == {"budget_exceeded"}
    assert "monthly budget" in read_jsonl(client, batch.error_file_id)[0]["error"]["message"]
    report: Any = client.get("/usage", cast_to=object)
    assert report["monthly_budget_usd"] == pytest.approx(budget)
    assert budget <= report["month_to_date_cost_usd"] <= budget + 3 * line_cost  # over by at most what was in flight

    blocked = wait_for(client, submit(client, [chat_line(0)]).id)  # nothing more runs this month
    assert blocked.status == "completed" and blocked.request_counts is not None
    assert blocked.request_counts.failed == 1
