"""``broker submit | status | results | cancel | usage`` against an embedded broker, through the real entry point."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from cli.client import Prices, usd
from simulator.responses import SIM_ERROR_400_MARKER
from tests.cli.conftest import Cli, assert_clean_failure, modelless_chat_lines, write_jsonl
from tests.harness import CHAT_MODEL, chat_line, embedding_line, free_port, read_jsonl, submit, wait_for

PRICE_IN, PRICE_OUT = 0.15, 0.6  #: the test catalogue's price of CHAT_MODEL, USD per 1M tokens


def test_submit_wait_sets_the_model_shows_progress_and_ends_completed(cli: Cli, tmp_path: Path) -> None:
    lines = modelless_chat_lines(200)
    source = write_jsonl(tmp_path / "requests.jsonl", lines)

    result = cli("submit", str(source), "--model", CHAT_MODEL, "--wait", "--priority", "high", "--window", "1h")

    assert result.exit_code == 0, result.output
    batch_id = result.stdout.strip()
    assert batch_id.startswith("batch_") and "\n" not in batch_id  # stdout carries the id alone, for scripts
    assert "200/200" in result.stderr and "lines/s" in result.stderr and "ETA" in result.stderr
    client = cli.client()
    batch = client.batches.retrieve(batch_id)
    assert batch.status == "completed" and batch.request_counts is not None
    assert batch.request_counts.completed == 200
    assert (batch.completion_window, (batch.model_extra or {})["priority"]) == ("1h", "high")
    uploaded = [json.loads(x) for x in client.files.content(batch.input_file_id).text.splitlines()]
    assert [x["custom_id"] for x in uploaded] == [x["custom_id"] for x in lines]
    assert {x["body"]["model"] for x in uploaded} == {CHAT_MODEL}
    assert batch.usage is not None
    cost = (batch.usage.input_tokens * PRICE_IN + batch.usage.output_tokens * PRICE_OUT) / 1e6
    assert cost > 0 and f"cost {usd(cost)}" in result.stderr  # the bar's "cost so far", ended
    assert "200 total, 200 completed, 0 failed" in result.stderr  # the summary


def test_submit_infers_the_endpoint_then_status_lists_and_details(cli: Cli, tmp_path: Path) -> None:
    source = write_jsonl(tmp_path / "emb.jsonl", [embedding_line(i) for i in range(20)])
    result = cli("submit", str(source))
    assert result.exit_code == 0, result.output
    batch_id = result.stdout.strip()
    batch = wait_for(cli.client(), batch_id)
    assert (batch.endpoint, batch.status) == ("/v1/embeddings", "completed")

    listing = cli("status")
    assert listing.exit_code == 0, listing.output
    assert batch_id in listing.stdout and "/v1/embeddings" in listing.stdout and "20/20" in listing.stdout

    detail = cli("status", batch_id)
    assert detail.exit_code == 0, detail.output
    assert batch_id in detail.stdout and "20 total, 20 completed, 0 failed" in detail.stdout
    assert batch.output_file_id is not None and batch.output_file_id in detail.stdout
    assert "text-embedding-3-small: sim realtime" in detail.stdout  # the route each model took

    usage = cli("usage")
    assert usage.exit_code == 0, usage.output
    assert "realtime" in usage.stdout and "20" in usage.stdout and "no monthly budget" in usage.stdout


def test_results_writes_both_files_and_a_summary(cli: Cli, tmp_path: Path) -> None:
    client = cli.client()
    lines = [chat_line(i, f"bad {SIM_ERROR_400_MARKER}" if i % 10 == 0 else None) for i in range(50)]
    batch = wait_for(client, submit(client, lines).id)
    assert batch.request_counts is not None and batch.request_counts.failed == 5

    result = cli("results", batch.id, "-o", str(tmp_path / "out"))

    assert result.exit_code == 0, result.output
    output = tmp_path / "out" / f"{batch.id}_output.jsonl"
    errors = tmp_path / "out" / f"{batch.id}_errors.jsonl"
    out_lines = [json.loads(x) for x in output.read_text().splitlines()]
    err_lines = [json.loads(x) for x in errors.read_text().splitlines()]
    assert (len(out_lines), len(err_lines)) == (45, 5)
    assert out_lines == read_jsonl(client, batch.output_file_id)
    usage = [x["response"]["body"]["usage"] for x in out_lines]
    tokens_in, tokens_out = sum(u["prompt_tokens"] for u in usage), sum(u["completion_tokens"] for u in usage)
    summary = " ".join(result.stdout.split())
    assert "succeeded │ 45" in summary and "failed │ 5" in summary
    assert f"input tokens │ {tokens_in:,}" in summary and f"output tokens │ {tokens_out:,}" in summary
    assert usd((tokens_in * PRICE_IN + tokens_out * PRICE_OUT) / 1e6) in summary
    assert "simulated_error (HTTP 400) │ 5" in summary


def test_cancel_of_a_finished_batch_says_why(cli: Cli) -> None:
    client = cli.client()
    batch = wait_for(client, submit(client, [chat_line(0)]).id)
    assert_clean_failure(cli("cancel", batch.id), "Cannot cancel a batch with status 'completed'")


def test_unknown_batch_id_is_a_clear_message_and_exit_code_1(cli: Cli) -> None:
    for command in ("status", "results", "cancel"):
        assert_clean_failure(cli(command, "batch_nope"), "No such Batch object: batch_nope (HTTP 404)")


def test_connection_and_key_problems_are_clear_messages(cli: Cli) -> None:
    unreachable = cli("status", BROKER_URL=f"http://127.0.0.1:{free_port()}/v1")
    assert_clean_failure(unreachable, "cannot reach the broker")
    assert_clean_failure(cli("status", BROKER_API_KEY=None), "no API key")
    assert_clean_failure(cli("status", BROKER_API_KEY="sk-wrong"), "(HTTP 401)")
    assert cli("status", BROKER_API_KEY=None, OPENAI_API_KEY=cli.key).exit_code == 0


def test_console_script_reports_an_unknown_batch_without_a_traceback(cli: Cli) -> None:
    env = {**os.environ, **{k: v for k, v in cli.env().items() if v is not None}}
    env.pop("OPENAI_API_KEY", None)
    proc = subprocess.run([sys.executable, "-m", "cli.main", "status", "batch_nope"], env=env, capture_output=True,
                          text=True, timeout=60, cwd=Path(__file__).parents[2])
    assert proc.returncode == 1
    assert proc.stderr.strip() == "error: No such Batch object: batch_nope (HTTP 404)"
    assert proc.stdout == ""


def test_models_carry_the_prices_the_cli_reads(cli: Cli) -> None:
    prices = Prices.fetch(cli.client())
    assert prices.table == {CHAT_MODEL: (PRICE_IN, PRICE_OUT), "text-embedding-3-small": (0.02, 0.0),
                            "omni-moderation-latest": (0.0, 0.0)}
    assert prices.resolve(f"{CHAT_MODEL}-2024-07-18") == (PRICE_IN, PRICE_OUT) and prices.resolve("other") is None
    assert prices.cost(CHAT_MODEL, 1_000_000, 2_000_000) == pytest.approx(PRICE_IN + 2 * PRICE_OUT)


def test_a_refused_batch_leaves_no_upload_behind(cli: Cli, tmp_path: Path) -> None:
    source = write_jsonl(tmp_path / "requests.jsonl", [chat_line(0)])
    assert_clean_failure(cli("submit", str(source), "--priority", "soonish"), "Invalid priority 'soonish'")
    assert cli.client().files.list().data == []
