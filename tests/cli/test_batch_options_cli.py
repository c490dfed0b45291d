"""``broker submit`` with every batch extension, ``broker retry``, ``broker results`` of a running batch and an API URL
without ``/v1``: each test starts its own broker (settings of its own), so this module shares none."""

import json
from datetime import UTC, datetime
from pathlib import Path

from simulator import SimulatorServer
from simulator.responses import SIM_SLOW_MARKER
from tests.cli.conftest import Cli, assert_clean_failure, write_jsonl
from tests.harness import MakeBroker, chat_line, submit, wait_for


def test_submit_sends_every_batch_extension(make_broker: MakeBroker, tmp_path: Path) -> None:
    broker = make_broker(workers=False, planner=False, webhook_allow_hosts=["127.0.0.1"])
    cli = Cli(broker, broker.key)
    source = write_jsonl(tmp_path / "r.jsonl", [chat_line(i) for i in range(3)])
    result = cli("submit", str(source), "--route", "realtime", "--metadata", "team=search", "--metadata", "run=7",
                 "--max-cost-usd", "1.5", "--webhook-url", "http://127.0.0.1:9/hook",
                 "--not-before", "2030-01-01T00:00:00", "--constraints", '{"providers": ["sim"]}')
    assert result.exit_code == 0, result.output
    batch = cli.client().batches.retrieve(result.stdout.strip())
    extra = batch.model_extra or {}
    assert batch.metadata == {"team": "search", "run": "7"}
    assert (extra["route"], extra["max_cost_usd"], extra["webhook_url"]) == ("realtime", 1.5,
                                                                             "http://127.0.0.1:9/hook")
    assert extra["not_before"] == int(datetime(2030, 1, 1, tzinfo=UTC).timestamp())
    assert extra["constraints"] == {"regions": None, "providers": ["sim"]}

    assert_clean_failure(cli("submit", str(source), "--constraints", "eu"), "--constraints takes a JSON object")
    assert_clean_failure(cli("submit", str(source), "--not-before", "tomorrow"), "--not-before takes unix seconds")
    assert_clean_failure(cli("submit", str(source), "--metadata", "novalue"), "--metadata takes KEY=VALUE")
    refused = cli("submit", str(source), "--webhook-url", "http://10.1.2.3/hook")
    assert_clean_failure(refused, "BROKER_WEBHOOK_ALLOW_HOSTS")


def test_retry_runs_the_failed_lines_again(make_broker: MakeBroker, sim: SimulatorServer, tmp_path: Path) -> None:
    broker = make_broker(max_attempts=1)
    cli = Cli(broker, broker.key)
    sim.config.error_rate, sim.config.error_kinds = 1.0, ("500",)  # the provider is down: every line fails
    source = write_jsonl(tmp_path / "r.jsonl", [chat_line(i) for i in range(6)])
    first = cli("submit", str(source), "--wait")
    assert first.exit_code == 1 and "6 of 6 lines failed" in " ".join(first.stderr.split()), first.output
    batch_id = first.stdout.strip()

    sim.config.error_rate = 0.0  # back up
    again = cli("retry", batch_id, "--wait")
    assert again.exit_code == 0, again.output
    assert again.stdout.startswith(f"{batch_id} in_progress") and "retrying 6 failed lines" in again.stderr
    batch = cli.client().batches.retrieve(batch_id)
    assert batch.status == "completed" and batch.request_counts is not None
    assert (batch.request_counts.completed, batch.request_counts.failed) == (6, 0)
    assert_clean_failure(cli("retry", "batch_nope"), "No such Batch object: batch_nope")


def test_results_of_a_running_batch_are_the_lines_finished_so_far(
        make_broker: MakeBroker, sim: SimulatorServer, tmp_path: Path) -> None:
    sim.config.slow_seconds = 5.0
    broker = make_broker()
    cli, client = Cli(broker, broker.key), broker.client()
    lines = [chat_line(i, SIM_SLOW_MARKER if i >= 4 else None) for i in range(6)]
    batch = wait_for(client, submit(client, lines).id, until=lambda b: b.request_counts is not None
                     and b.request_counts.completed == 4)
    assert batch.status == "in_progress"

    result = cli("results", batch.id, "-o", str(tmp_path), "--json")
    assert result.exit_code == 0, result.output
    assert "4 of 6 lines have succeeded so far" in " ".join(result.stderr.split())
    so_far = [json.loads(x) for x in (tmp_path / f"{batch.id}_output.jsonl").read_text().splitlines()]
    assert sorted(x["custom_id"] for x in so_far) == [f"req-{i}" for i in range(4)]
    assert json.loads(result.stdout)["succeeded"] == 4 and json.loads(result.stdout)["status"] == "in_progress"

    wait_for(client, batch.id, timeout=30)
    final = cli("results", batch.id, "-o", str(tmp_path))
    assert final.exit_code == 0, final.output
    assert len((tmp_path / f"{batch.id}_output.jsonl").read_text().splitlines()) == 6


def test_an_api_url_without_v1_says_what_was_expected(make_broker: MakeBroker) -> None:
    broker = make_broker(workers=False, planner=False)
    root = broker.server.url
    result = Cli(broker, broker.key)("status", BROKER_URL=root)
    assert_clean_failure(result, f"The API lives under /v1: use the base URL {root}/v1")
    inside = broker.http().get("/nope")  # under /v1 the base URL was right: a plain 404
    assert inside.status_code == 404 and inside.json()["error"]["message"] == "Not found"
