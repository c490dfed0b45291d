"""``broker schedules create | list | pause | resume | delete`` against an embedded broker, via the entry point."""

import json
from collections.abc import Callable
from pathlib import Path

import httpx

from tests.cli.conftest import Cli, assert_clean_failure, modelless_chat_lines, write_jsonl
from tests.harness import CHAT_MODEL, EmbeddedBroker, chat_line, upload

CHAT = "/v1/chat/completions"


def schedule(cli: Cli, schedule_id: str) -> httpx.Response:
    with cli.broker.http(cli.key) as http:
        return http.get(f"/schedules/{schedule_id}")


def test_create_uploads_the_file_then_list_pause_resume_delete(cli: Cli, tmp_path: Path) -> None:
    source = write_jsonl(tmp_path / "nightly.jsonl", modelless_chat_lines(3))
    created = cli("schedules", "create", str(source), "--cron", "0 2 * * *", "--tz", "Europe/Paris",
                  "--model", CHAT_MODEL, "--window", "7d", "--priority", "low", "--metadata", "team=search",
                  "--metadata", "kind=nightly")
    assert created.exit_code == 0, created.output
    schedule_id = created.stdout.strip()
    assert schedule_id.startswith("sched_") and "\n" not in schedule_id
    assert 'cron "0 2 * * *" (Europe/Paris), next run' in created.stderr and "02:00:00 CE" in created.stderr
    body = schedule(cli, schedule_id).json()
    assert (body["endpoint"], body["completion_window"], body["priority"], body["route"], body["metadata"]) == (
        "/v1/chat/completions", "7d", "low", "auto", {"team": "search", "kind": "nightly"})
    uploaded = [json.loads(x) for x in cli.client().files.content(body["input_file_id"]).text.splitlines()]
    assert [x["body"]["model"] for x in uploaded] == [CHAT_MODEL] * 3

    again = cli("schedules", "create", body["input_file_id"], "--cron", "*/30 * * * *",
                "--endpoint", "/v1/chat/completions", "--route", "off_peak", "--paused")
    assert again.exit_code == 0, again.output
    other_id = again.stdout.strip()
    listing = cli("schedules", "list")
    assert listing.exit_code == 0, listing.output
    assert schedule_id in listing.stdout and other_id in listing.stdout
    assert "Europe/Paris" in listing.stdout and "paused" in listing.stdout and "off_peak" in listing.stdout

    resumed = cli("schedules", "resume", other_id)
    assert resumed.exit_code == 0 and resumed.stdout.startswith(f"{other_id} resumed, next run"), resumed.output
    assert schedule(cli, other_id).json()["enabled"] is True
    paused = cli("schedules", "pause", schedule_id)
    assert (paused.exit_code, paused.stdout.strip()) == (0, f"{schedule_id} paused")
    assert schedule(cli, schedule_id).json()["next_run_at"] is None

    for sid in (schedule_id, other_id):
        deleted = cli("schedules", "delete", sid)
        assert (deleted.exit_code, deleted.stdout.strip()) == (0, f"{sid} deleted")
        assert schedule(cli, sid).status_code == 404
    assert "no schedules yet" in cli("schedules", "list").stdout


def test_refused_schedules_fail_cleanly_and_leave_no_upload(cli: Cli, tmp_path: Path) -> None:
    source = write_jsonl(tmp_path / "in.jsonl", modelless_chat_lines(2))
    bad_cron = cli("schedules", "create", str(source), "--cron", "every night", "--model", CHAT_MODEL)
    assert_clean_failure(bad_cron, "Invalid cron expression 'every night'")
    assert "(HTTP 400)" in bad_cron.stderr
    bad_zone = cli("schedules", "create", str(source), "--cron", "0 2 * * *", "--tz", "Moon/Base")
    assert_clean_failure(bad_zone, "Unknown time zone 'Moon/Base'")
    assert cli.client().files.list().data == [], "a refused schedule leaves no orphan upload"
    assert_clean_failure(cli("schedules", "create", "file_nope", "--cron", "0 2 * * *"), "pass --endpoint")
    assert_clean_failure(cli("schedules", "create", "file_nope", "--cron", "0 2 * * *", "--endpoint",
                             "/v1/chat/completions"), "No such File object: file_nope")
    assert_clean_failure(cli("schedules", "create", str(source), "--cron", "0 2 * * *", "--metadata", "oops"),
                         "--metadata takes KEY=VALUE")
    assert_clean_failure(cli("schedules", "delete", "sched_nope"), "No such schedule object: sched_nope")


def test_create_with_input_url_and_list_and_show_print_each_schedules_source(
        make_broker: Callable[..., EmbeddedBroker], tmp_path: Path) -> None:
    root = tmp_path / "drops"
    root.mkdir()
    broker = make_broker(workers=False, planner=False, schedule_folders=[root])
    cli = Cli(broker, broker.key)
    created = cli("schedules", "create", "--input-url", root.as_uri(), "--endpoint", CHAT, "--cron", "0 2 * * *")
    assert created.exit_code == 0, created.output
    schedule_id = created.stdout.strip()
    assert f"each run: {CHAT} from {root.as_uri()}," in " ".join(created.stderr.split())
    body = schedule(cli, schedule_id).json()
    assert (body["input_url"], body["input_file_id"]) == (root.as_uri(), None)
    stored = upload(cli.client(), [chat_line(0)])
    from_file = cli("schedules", "create", stored, "--endpoint", CHAT, "--cron", "0 3 * * *").stdout.strip()

    shown = cli("schedules", "show", schedule_id)
    assert shown.exit_code == 0, shown.output
    assert f"source      {root.as_uri()} (read at each run)" in shown.stdout
    assert f"source      {stored} (stored file)" in cli("schedules", "show", from_file).stdout
    listing = cli("schedules", "list", COLUMNS="400")
    assert listing.exit_code == 0 and stored in listing.stdout and "file:///" in listing.stdout, listing.output

    assert_clean_failure(cli("schedules", "create", stored, "--input-url", root.as_uri(), "--endpoint", CHAT,
                             "--cron", "0 2 * * *"), "or --input-url, not both")
    assert_clean_failure(cli("schedules", "create", "--input-url", root.as_uri(), "--cron", "0 2 * * *"),
                         "--input-url needs --endpoint")
    assert_clean_failure(cli("schedules", "create", "--cron", "0 2 * * *"), "give INPUT")
    outside = cli("schedules", "create", "--input-url", tmp_path.as_uri(), "--endpoint", CHAT, "--cron", "0 2 * * *")
    assert_clean_failure(outside, "is outside the folders schedules may read")
    assert_clean_failure(cli("schedules", "show", "sched_nope"), "No such schedule object: sched_nope")
