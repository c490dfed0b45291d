"""What a new user trips on in the first hour, through ``broker …`` against the module's embedded broker: failures
that look like success, unreadable tables, costs shown as $0.0000, hidden validation errors, schedules that can
never run, and ``broker label`` on real-world CSV files."""

import csv
import json
import time
from pathlib import Path

from sqlalchemy import text

from cli.client import usd
from simulator.responses import SIM_ERROR_400_MARKER
from tests.cli.conftest import Cli, assert_clean_failure, write_jsonl
from tests.harness import CHAT_MODEL, chat_line, submit, wait_for


def test_submit_wait_breaks_failures_down_by_code_and_exits_1_unless_allowed(cli: Cli, tmp_path: Path) -> None:
    lines = [chat_line(i, f"bad {SIM_ERROR_400_MARKER}" if i % 4 == 0 else None) for i in range(20)]
    source = write_jsonl(tmp_path / "requests.jsonl", lines)

    strict = cli("submit", str(source), "--wait")
    assert strict.exit_code == 1, strict.output  # the batch "completed", but 5 of its 20 lines failed
    assert "failed lines by error" in strict.stderr
    flat = " ".join(strict.stderr.split())
    assert "simulated_error │ 5 │ Simulated invalid request" in flat  # code, count, first message
    assert "error: 5 of 20 lines failed" in flat and "--allow-failures" in flat and "broker retry" in flat

    allowed = cli("submit", str(source), "--wait", "--allow-failures")
    assert allowed.exit_code == 0, allowed.output
    batch_id = allowed.stdout.strip()
    assert "simulated_error │ 5" in " ".join(allowed.stderr.split())

    status = cli("status", batch_id)
    assert status.exit_code == 0 and "simulated_error │ 5 │" in " ".join(status.stdout.split()), status.output
    as_json = json.loads(cli("status", batch_id, "--json").stdout)
    assert as_json["id"] == batch_id and as_json["request_counts"]["failed"] == 5
    assert [(f["code"], f["count"], f["status_code"]) for f in as_json["failures"]] == [("simulated_error", 5, 400)]

    ok = cli("submit", str(write_jsonl(tmp_path / "ok.jsonl", [chat_line(i) for i in range(3)])), "--wait")
    assert ok.exit_code == 0 and "failed lines by error" not in ok.stderr, ok.output


def test_validation_errors_say_how_many_more_and_an_empty_file_has_no_line_none(cli: Cli, tmp_path: Path) -> None:
    bad = write_jsonl(tmp_path / "bad.jsonl", [{"custom_id": f"r{i}", "method": "GET", "url": "/v1/chat/completions",
                                                "body": {"model": CHAT_MODEL}} for i in range(25)])
    result = cli("submit", str(bad), "--wait")
    assert result.exit_code == 1
    assert result.stderr.count("invalid_method") == 10
    assert "… and 15 more errors (`broker status" in result.stderr
    assert len(json.loads(cli("status", result.stdout.strip(), "--json").stdout)["errors"]["data"]) == 25

    empty = cli("submit", str(write_jsonl(tmp_path / "empty.jsonl", [])), "--endpoint", "/v1/chat/completions",
                "--wait")
    assert empty.exit_code == 1 and "empty_file" in empty.stderr, empty.output
    assert "line None" not in empty.stderr


def test_tables_fold_on_a_narrow_terminal_and_costs_keep_their_digits(cli: Cli) -> None:
    client = cli.client()
    batch = wait_for(client, submit(client, [chat_line(i) for i in range(3)]).id)
    for command in (("status",), ("usage",)):
        narrow = cli(*command, COLUMNS="80")
        assert narrow.exit_code == 0, narrow.output
        assert "…" not in narrow.stdout and max(len(x) for x in narrow.stdout.splitlines()) <= 80
        assert "cost" in narrow.stdout.split()  # the header is whole, not "co…"
    folded = cli("status", COLUMNS="80").stdout
    assert batch.id in folded and "/v1/chat/completions" in folded
    cost = (batch.model_extra or {})["cost_usd"]
    assert 0 < cost < 0.001 and usd(cost) in folded and usd(cost) != "$0.0000"
    assert (usd(0.001), usd(0.0000456), usd(0.123456), usd(12.3456), usd(0)) == (
        "$0.001", "$0.0000456", "$0.123", "$12.35", "$0.00")
    listing = json.loads(cli("status", "--json").stdout)
    assert [b["id"] for b in listing] == [batch.id]
    usage = json.loads(cli("usage", "--json").stdout)
    assert usage["total_requests"] == 3


def test_a_schedule_that_can_never_run_is_refused_and_show_lists_each_runs_outcome(cli: Cli, tmp_path: Path) -> None:
    unknown = write_jsonl(tmp_path / "unknown.jsonl", [chat_line(0, model="gpt-99")])
    refused = cli("schedules", "create", str(unknown), "--cron", "0 2 * * *")
    assert_clean_failure(refused, "Every run of this schedule would fail validation: line 1: The model 'gpt-99'")
    assert cli.client().files.list().data == []  # the refused schedule's upload was removed

    lines = [chat_line(0), chat_line(1, f"bad {SIM_ERROR_400_MARKER}"), chat_line(2)]
    created = cli("schedules", "create", str(write_jsonl(tmp_path / "nightly.jsonl", lines)), "--cron", "0 2 * * *")
    assert created.exit_code == 0, created.output
    schedule_id = created.stdout.strip()
    with cli.broker.core.engine.begin() as conn:  # due now
        conn.execute(text("UPDATE schedule SET next_run_at = :t WHERE id = :id"),
                     {"t": int(time.time()) - 1, "id": schedule_id})
    deadline = time.monotonic() + 30
    while not (runs := json.loads(cli("schedules", "show", schedule_id, "--json").stdout)["runs"]) or \
            runs[0]["status"] != "completed":
        assert time.monotonic() < deadline, runs
        time.sleep(0.1)
    assert (runs[0]["succeeded"], runs[0]["failed"]) == (2, 1)
    assert runs[0]["first_error"].startswith("simulated_error: Simulated invalid request")
    shown = cli("schedules", "show", schedule_id)
    flat = " ".join(shown.stdout.split())
    assert runs[0]["batch"] in flat and "completed │ 2/3 │ 1 │ simulated_error" in flat, shown.stdout
    assert json.loads(cli("schedules", "list", "--json").stdout)[0]["id"] == schedule_id


def test_label_sniffs_semicolons_skips_empty_texts_follows_the_text_and_keeps_an_existing_output(
        cli: Cli, tmp_path: Path) -> None:
    data = tmp_path / "reviews.csv"
    with data.open("w", newline="", encoding="utf-8") as fh:
        csv.writer(fh, delimiter=";").writerows([
            ["id", "text", "note"], ["1", "Clearly positive, loved it", "a; b"], ["2", "", "no text"],
            ["3", "negative: broke in a day", ""], ["4", "   ", "blank"], ["5", "it was neutral", "x"]])
    args = ("--labels", "positive,negative,neutral", "--prompt", "Sentiment.", "--model", CHAT_MODEL)

    result = cli("label", str(data), *args)
    assert result.exit_code == 0, result.output
    said = " ".join(result.stderr.split())
    assert "labelling 3 rows" in said and "2 rows with an empty text skipped" in said
    assert "3/3" in result.stderr  # only the rows with a text were sent
    target = tmp_path / "reviews.labelled.csv"
    with target.open(newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh, delimiter=";"))  # written back in the file's own dialect
    assert [(r["id"], r["note"], r["label"]) for r in rows] == [
        ("1", "a; b", "positive"), ("2", "no text", ""), ("3", "", "negative"), ("4", "blank", ""),
        ("5", "x", "neutral")]
    assert rows[1]["raw_answer"] == "[empty text, not sent]" and rows[1]["cost_usd"] == ""

    before = target.read_bytes()
    again = cli("label", str(data), *args)
    assert_clean_failure(again, "reviews.labelled.csv exists; pass --force")
    assert target.read_bytes() == before
    forced = cli("label", str(data), *args, "--force")
    assert forced.exit_code == 0, forced.output
