"""``broker schedules create | list | show | pause | resume | delete``: recurring batches, against any broker.

The openai SDK has no schedules resource, so these commands use its generic ``get``/``post``/``delete`` (same
auth, retries and error types as the rest of the CLI). ``create`` prints the schedule id alone on stdout.
"""

import tempfile
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import openai
import typer
from rich.console import Console, RenderableType
from rich.markup import escape

from cli.batches import DEFAULT_WINDOW, Priority, Window, prepare_input, priority_value
from cli.client import DEFAULT_BROKER_URL, ApiKey, BrokerUrl, CliError, connect, friendly_errors, line_counts, when
from cli.failures import fetch_failures
from cli.options import JsonOption, parse_metadata, print_json
from cli.tables import fitted_table

DEFAULT_LIST_LIMIT = 100  #: schedules shown by ``broker schedules list``
RUNS_SCANNED = 100  #: the project's latest batches searched for a schedule's runs by ``schedules show``

app = typer.Typer(help="Recurring batches: a cron schedule creates a batch from an input file (or from the file a URL "
                       "or folder provides) at each run.",
                  no_args_is_help=True)
ScheduleId = Annotated[str, typer.Argument(help="The schedule id (sched_…).")]


class ScheduleObject(openai.BaseModel):
    """The broker's Schedule object, as much of it as the CLI shows (the SDK keeps the rest as extras)."""

    id: str
    cron: str
    timezone: str
    input_file_id: str | None = None
    input_url: str | None = None
    endpoint: str
    completion_window: str
    priority: str | int
    route: str
    enabled: bool
    next_run_at: int | None = None
    last_run_at: int | None = None
    last_batch_id: str | None = None
    last_error: str | None = None

    @property
    def source(self) -> str:
        """Where each run's input comes from: the stored file's id, or the URL or folder read at each run."""
        return self.input_url or self.input_file_id or "-"


class ScheduleListObject(openai.BaseModel):
    data: list[ScheduleObject]


def at_zone(timestamp: int | None, zone: str) -> str:
    """A unix time on the schedule's own clock (the zone its cron is read in)."""
    if timestamp is None:
        return "-"
    try:
        tz = ZoneInfo(zone)
    except (ZoneInfoNotFoundError, ValueError):  # the broker knows a zone this machine does not
        return datetime.fromtimestamp(timestamp).strftime("%Y-%m-%d %H:%M:%S")
    return datetime.fromtimestamp(timestamp, tz).strftime("%Y-%m-%d %H:%M:%S %Z")


def _read_at_each_run(source: str | None, input_url: str, model: str | None, endpoint: str | None) -> str:
    """The endpoint of a schedule whose input ``input_url`` provides at each run (nothing to upload now)."""
    if source is not None:
        raise CliError(f"give INPUT ('{source}') or --input-url, not both")
    if model:
        raise CliError("--model rewrites a local file; with --input-url the broker reads the file at each run")
    if not endpoint:
        raise CliError("--input-url needs --endpoint: the file is only read at each run")
    return endpoint


def _input(client: openai.OpenAI, source: str, model: str | None, endpoint: str | None,
           workdir: Path) -> tuple[str, str, bool]:
    """(file id, endpoint, uploaded here): a local JSONL file is uploaded (purpose batch); else it is a file id."""
    path = Path(source)
    if not path.is_file():
        if model:
            raise CliError(f"--model rewrites a local file; '{source}' is not one (an uploaded file is used as is)")
        if not endpoint:
            raise CliError(f"'{source}' is not a local file, so it is taken as a file id: pass --endpoint with it")
        return source, endpoint, False
    upload_path, line_url = prepare_input(path, model, workdir)
    endpoint = endpoint or line_url
    if not endpoint:
        raise CliError(f"cannot tell the endpoint from {path}'s first line; pass --endpoint")
    with upload_path.open("rb") as fh:
        upload = client.files.create(file=(upload_path.name, fh), purpose="batch")
    return upload.id, endpoint, True


@app.command("create")
def create(cron: Annotated[str, typer.Option(
               "--cron", help='When to run, e.g. "0 2 * * *" (02:00 daily); a sixth field counts seconds.')],
           source: Annotated[str | None, typer.Argument(
               metavar="INPUT", help="A JSONL file to upload, or the id of an uploaded file of purpose batch.",
               show_default=False)] = None,
           input_url: Annotated[str | None, typer.Option(
               "--input-url", help="Instead of INPUT: read the input at each run from an https:// or http:// URL, "
                                   "or from file:///a/folder (its newest *.jsonl); needs --endpoint.")] = None,
           timezone: Annotated[str, typer.Option("--timezone", "--tz", help="IANA zone the cron is read in.")] = "UTC",
           model: Annotated[str | None, typer.Option("--model", help="Set body.model on every line.")] = None,
           endpoint: Annotated[str | None, typer.Option(
               "--endpoint", help="Batch endpoint; by default the lines' url.")] = None,
           window: Window = DEFAULT_WINDOW, priority: Priority = None,
           route: Annotated[Literal["auto", "realtime", "native_batch", "off_peak"], typer.Option(
               "--route", help="auto picks the cheapest way that meets the window.")] = "auto",
           webhook_url: Annotated[str | None, typer.Option("--webhook-url", help="Told when each batch ends.")] = None,
           metadata: Annotated[list[str] | None, typer.Option(
               "--metadata", help="KEY=VALUE on every batch (repeatable).")] = None,
           paused: Annotated[bool, typer.Option("--paused", help="Create it paused (resume to start).")] = False,
           url: BrokerUrl = DEFAULT_BROKER_URL, api_key: ApiKey = None) -> None:
    """Create a schedule: at each cron time the broker creates a batch from INPUT (or --input-url) with these
    settings."""
    err = Console(stderr=True)
    with friendly_errors(err), tempfile.TemporaryDirectory(prefix="broker-schedule-") as tmp:
        if source is None and input_url is None:
            raise CliError("give INPUT (a JSONL file or a file id) or --input-url")
        client = connect(url, api_key)
        body: dict[str, Any] = {"cron": cron, "timezone": timezone, "completion_window": window, "route": route,
                                "enabled": not paused}
        if priority is not None:
            body["priority"] = priority_value(priority)
        if webhook_url:
            body["webhook_url"] = webhook_url
        if (pairs := parse_metadata(metadata)) is not None:
            body["metadata"] = pairs
        uploaded: str | None = None
        if input_url is not None:
            body["endpoint"], body["input_url"] = _read_at_each_run(source, input_url, model, endpoint), input_url
        elif source is not None:
            file_id, body["endpoint"], is_upload = _input(client, source, model, endpoint, Path(tmp))
            body["input_file_id"], uploaded = file_id, file_id if is_upload else None
        try:
            schedule = client.post("/schedules", body=body, cast_to=ScheduleObject)
        except openai.APIStatusError:
            if uploaded:
                client.files.delete(uploaded)  # a refused schedule leaves no orphan upload behind
            raise
        typer.echo(schedule.id)
        when = f"next run {at_zone(schedule.next_run_at, schedule.timezone)}" if schedule.enabled else "paused"
        err.print(f"schedule [bold]{schedule.id}[/] created: cron \"{schedule.cron}\" ({schedule.timezone}), {when}; "
                  f"each run: {schedule.endpoint} from {escape(schedule.source)}, window {schedule.completion_window}, "
                  f"route {schedule.route}")


@app.command("list")
def list_(limit: Annotated[int, typer.Option(help="Schedules listed.", min=1, max=100)] = DEFAULT_LIST_LIMIT,
          as_json: JsonOption = False, url: BrokerUrl = DEFAULT_BROKER_URL, api_key: ApiKey = None) -> None:
    """A table of the project's schedules, newest first (times on each schedule's own clock)."""
    out = Console()
    with friendly_errors(Console(stderr=True)):
        page = connect(url, api_key).get("/schedules", options={"params": {"limit": limit}},
                                         cast_to=ScheduleListObject)
    if as_json:
        print_json([s.model_dump(mode="json") for s in page.data])
    elif not page.data:
        out.print('no schedules yet: create one with `broker schedules create FILE.jsonl --cron "0 2 * * *"`')
    else:
        out.print(schedules_table(out, page.data))


SCHEDULE_COLUMNS = ("schedule", "cron", "timezone", "source", "endpoint", "window", "route", "state", "next run",
                    "last run", "last batch")


def schedules_table(console: Console, schedules: list[ScheduleObject]) -> RenderableType:
    rows = []
    for s in schedules:
        state = "active" if s.enabled else "paused"
        last = s.last_batch_id or "-"
        if s.last_error:
            last = f"[red]error[/]: {escape(s.last_error)}"
        rows.append((s.id, s.cron, s.timezone, escape(s.source), s.endpoint, s.completion_window, s.route, state,
                     at_zone(s.next_run_at, s.timezone), at_zone(s.last_run_at, s.timezone), last))
    return fitted_table(console, "Schedules", SCHEDULE_COLUMNS, rows)


def schedule_runs(client: openai.OpenAI, schedule_id: str) -> list[dict[str, Any]]:
    """The batches the schedule created among the project's latest, newest first, with how each went."""
    runs = []
    for batch in client.batches.list(limit=RUNS_SCANNED).data:
        if (batch.metadata or {}).get("schedule_id") != schedule_id:
            continue
        total, done, failed = line_counts(batch)
        failures = fetch_failures(client, batch.id) if failed else []
        errors = (batch.errors.data or []) if batch.errors else []
        first = failures[0] if failures else errors[0].model_dump() if errors else None
        runs.append({"batch": batch.id, "created_at": batch.created_at, "status": batch.status, "lines": total,
                     "succeeded": done - failed, "failed": failed,
                     "first_error": f"{first.get('code')}: {first.get('message')}" if first else None})
    return runs


def _run_rows(runs: list[dict[str, Any]]) -> list[tuple[str, ...]]:
    return [(r["batch"], when(r["created_at"]), r["status"], f"{r['succeeded']}/{r['lines']}", str(r["failed"]),
             escape(r["first_error"] or "-")) for r in runs]


@app.command()
def show(schedule_id: ScheduleId, as_json: JsonOption = False, url: BrokerUrl = DEFAULT_BROKER_URL,
         api_key: ApiKey = None) -> None:
    """One schedule: when it runs, where each run's input comes from, and how each recent run went."""
    with friendly_errors(Console(stderr=True)):
        client = connect(url, api_key)
        s = client.get(f"/schedules/{schedule_id}", cast_to=ScheduleObject)
        runs = schedule_runs(client, s.id)
    if as_json:
        print_json({**s.model_dump(mode="json"), "runs": runs})
        return
    source = f"{s.input_url} (read at each run)" if s.input_url else f"{s.input_file_id} (stored file)"
    rows = [("schedule", s.id), ("cron", f'"{s.cron}" ({s.timezone})'), ("source", source),
            ("endpoint", s.endpoint), ("window", s.completion_window), ("priority", str(s.priority)),
            ("route", s.route), ("state", "active" if s.enabled else "paused"),
            ("next run", at_zone(s.next_run_at, s.timezone)), ("last run", at_zone(s.last_run_at, s.timezone)),
            ("last batch", s.last_batch_id or "-"), ("last error", s.last_error or "-")]
    width = max(len(name) for name, _ in rows)
    for name, value in rows:
        typer.echo(f"{name:<{width}}  {value}")
    out = Console()
    if runs:
        out.print(fitted_table(out, "Runs", ("batch", "created", "status", "succeeded", "failed", "first error"),
                               _run_rows(runs), right=("succeeded", "failed")))
    else:
        out.print("no runs among the project's latest batches yet")


def _set_enabled(schedule_id: str, enabled: bool, url: str, api_key: str | None) -> None:
    with friendly_errors(Console(stderr=True)):
        s = connect(url, api_key).post(f"/schedules/{schedule_id}", body={"enabled": enabled}, cast_to=ScheduleObject)
        typer.echo(f"{s.id} resumed, next run {at_zone(s.next_run_at, s.timezone)}" if enabled else f"{s.id} paused")


@app.command()
def pause(schedule_id: ScheduleId, url: BrokerUrl = DEFAULT_BROKER_URL, api_key: ApiKey = None) -> None:
    """Stop creating batches until resumed (runs missed meanwhile are not made up)."""
    _set_enabled(schedule_id, False, url, api_key)


@app.command()
def resume(schedule_id: ScheduleId, url: BrokerUrl = DEFAULT_BROKER_URL, api_key: ApiKey = None) -> None:
    """Run again from the next cron time."""
    _set_enabled(schedule_id, True, url, api_key)


@app.command()
def delete(schedule_id: ScheduleId, url: BrokerUrl = DEFAULT_BROKER_URL, api_key: ApiKey = None) -> None:
    """Delete a schedule; the batches it created stay."""
    with friendly_errors(Console(stderr=True)):
        connect(url, api_key).delete(f"/schedules/{schedule_id}", cast_to=openai.BaseModel)
        typer.echo(f"{schedule_id} deleted")


def register(main: typer.Typer) -> None:
    """Add ``broker schedules …`` to the ``broker`` app."""
    main.add_typer(app, name="schedules")
