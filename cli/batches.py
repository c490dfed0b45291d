"""``broker submit | status | results | cancel | usage``: batches for people, against any broker, over HTTP.

Data goes to stdout (the batch id from ``submit``, tables), progress and errors to stderr, so
``ID=$(broker submit requests.jsonl --model gpt-4o-mini)`` works in scripts.
"""

import json
import tempfile
from pathlib import Path
from typing import Annotated, Any, cast

import openai
import typer
from openai.types import Batch
from rich.console import Console
from rich.table import Table

from cli.client import (
    DEFAULT_BROKER_URL,
    TERMINAL,
    ApiKey,
    BrokerUrl,
    CliError,
    Prices,
    batch_table,
    connect,
    friendly_errors,
    line_counts,
    usd,
    wait_for_batch,
    when,
)
from cli.results import ResultSummary, download, read_jsonl

DEFAULT_WINDOW = "24h"  #: completion window when none is given (OpenAI's only one; ours accepts any duration)
DEFAULT_LIST_LIMIT = 20  #: batches shown by ``broker status`` without an id

Window = Annotated[str, typer.Option("--window", help="Completion window: any duration such as 10m, 6h, 7d.")]
Priority = Annotated[str | None, typer.Option(
    "--priority", help="urgent, high, normal, low, background, or an integer (lower runs first).")]
Wait = Annotated[bool, typer.Option("--wait", help="Show progress until the batch ends, then a summary.")]


def _line_url(raw: str) -> str | None:
    try:
        line = json.loads(raw)
    except ValueError:
        return None
    url = line.get("url") if isinstance(line, dict) else None
    return url if isinstance(url, str) else None


def _with_model(raw: str, model: str) -> str:
    """The line with ``body.model`` set; a line we cannot read is kept as is, for the broker to report by number."""
    try:
        line = json.loads(raw)
    except ValueError:
        return raw
    if not isinstance(line, dict) or not isinstance(line.get("body"), dict):
        return raw
    line["body"]["model"] = model
    return json.dumps(line, ensure_ascii=False) + "\n"


def prepare_input(path: Path, model: str | None, workdir: Path) -> tuple[Path, str | None]:
    """The file to upload (streamed into a rewritten copy when ``model`` is set) and the first ``url`` found."""
    url: str | None = None
    if not model:
        with path.open(encoding="utf-8") as src:
            for raw in src:
                url = _line_url(raw) if raw.strip() else None
                if url is not None:
                    break
        return path, url
    target = workdir / path.name
    with path.open(encoding="utf-8") as src, target.open("w", encoding="utf-8") as dst:
        for raw in src:
            if url is None and raw.strip():
                url = _line_url(raw)
            dst.write(_with_model(raw, model) if raw.strip() else raw)
    return target, url


def priority_value(priority: str | None) -> str | int | None:
    if priority is None:
        return None
    return int(priority) if priority.lstrip("-").isdigit() else priority


def create_batch(client: openai.OpenAI, upload_path: Path, endpoint: str, window: str,
                 priority: str | None, metadata: dict[str, str] | None = None) -> Batch:
    """Upload a batch input file and create the batch; our extensions ride in ``extra_body``."""
    with upload_path.open("rb") as fh:
        upload = client.files.create(file=(upload_path.name, fh), purpose="batch")
    extensions: dict[str, Any] = {"completion_window": window}
    if priority is not None:
        extensions["priority"] = priority_value(priority)
    try:
        return client.batches.create(input_file_id=upload.id, endpoint=cast(Any, endpoint), completion_window="24h",
                                     metadata=metadata, extra_body=extensions)
    except openai.APIStatusError:
        client.files.delete(upload.id)  # a refused batch leaves no orphan upload behind
        raise


def finish(batch: Batch, console: Console, prices: Prices, model: str | None) -> None:
    """The summary after waiting; exit code 1 unless the batch completed."""
    console.print(batch_table(batch, prices, model))
    if batch.status != "completed":
        raise typer.Exit(1)
    console.print(f"download the results: broker results {batch.id} -o DIR")


def submit(file: Annotated[Path, typer.Argument(help="Batch input file (OpenAI's JSONL request lines).",
                                                exists=True, dir_okay=False, readable=True)],
           model: Annotated[str | None, typer.Option("--model", help="Set body.model on every line.")] = None,
           endpoint: Annotated[str | None, typer.Option(
               "--endpoint", help="Batch endpoint; by default the lines' url.")] = None,
           window: Window = DEFAULT_WINDOW, priority: Priority = None, wait: Wait = False,
           url: BrokerUrl = DEFAULT_BROKER_URL, api_key: ApiKey = None) -> None:
    """Upload a JSONL file and create a batch; print its id (and, with --wait, its progress and summary)."""
    err = Console(stderr=True)
    with friendly_errors(err), tempfile.TemporaryDirectory(prefix="broker-submit-") as tmp:
        client = connect(url, api_key)
        upload_path, line_url = prepare_input(file, model, Path(tmp))
        endpoint = endpoint or line_url
        if not endpoint:
            raise CliError(f"cannot tell the endpoint from {file}'s first line; pass --endpoint")
        batch = create_batch(client, upload_path, endpoint, window, priority)
        typer.echo(batch.id)
        err.print(f"batch [bold]{batch.id}[/] created: {endpoint}, window {window}"
                  + (f", model {model}" if model else "") + (f", priority {priority}" if priority else ""))
        if wait:
            prices = Prices.fetch(client)
            batch = wait_for_batch(client, batch, err, prices, model)
            finish(batch, err, prices, model)


def status(batch_id: Annotated[str | None, typer.Argument(help="A batch id; none lists recent batches.")] = None,
           limit: Annotated[int, typer.Option(help="Batches listed.", min=1, max=100)] = DEFAULT_LIST_LIMIT,
           url: BrokerUrl = DEFAULT_BROKER_URL, api_key: ApiKey = None) -> None:
    """One batch in detail, or a table of recent batches."""
    out = Console()
    with friendly_errors(Console(stderr=True)):
        client = connect(url, api_key)
        prices = Prices.fetch(client)
        if batch_id:
            out.print(batch_table(client.batches.retrieve(batch_id), prices))
            return
        batches = client.batches.list(limit=limit).data
        if not batches:
            out.print("no batches yet: create one with `broker submit FILE.jsonl --model M`")
            return
        out.print(batches_table(batches, prices))


def batches_table(batches: list[Batch], prices: Prices) -> Table:
    table = Table(title="Recent batches", title_justify="left")
    for column in ("batch", "status", "endpoint", "model", "done", "failed", "created", "cost"):
        table.add_column(column, no_wrap=column == "batch",
                         justify="right" if column in ("done", "failed", "cost") else "left")
    for b in batches:
        total, done, failed = line_counts(b)
        table.add_row(b.id, b.status, b.endpoint, b.model or "-", f"{done}/{total}", str(failed),
                      when(b.created_at), usd(prices.batch_cost(b)))
    return table


def results(batch_id: Annotated[str, typer.Argument(help="The batch id.")],
            output_dir: Annotated[Path, typer.Option("--output-dir", "-o", help="Folder for the two files.",
                                                     file_okay=False)] = Path("."),
            url: BrokerUrl = DEFAULT_BROKER_URL, api_key: ApiKey = None) -> None:
    """Download a batch's output and error files (<id>_output.jsonl, <id>_errors.jsonl) and sum them up."""
    out, err = Console(), Console(stderr=True)
    with friendly_errors(err):
        client = connect(url, api_key)
        batch = client.batches.retrieve(batch_id)
        if batch.status not in TERMINAL:
            total, done, _ = line_counts(batch)
            raise CliError(f"batch {batch.id} is still {batch.status} ({done}/{total} lines done); its files "
                           f"appear when it ends (`broker status {batch.id}`)")
        if batch.output_file_id is None and batch.error_file_id is None:
            err.print(batch_table(batch, Prices.fetch(client)))
            raise CliError(f"batch {batch.id} ended {batch.status} without result files")
        prices = Prices.fetch(client)
        output_dir.mkdir(parents=True, exist_ok=True)
        summary = ResultSummary()
        for file_id, suffix, ok in ((batch.output_file_id, "output", True), (batch.error_file_id, "errors", False)):
            path = output_dir / f"{batch.id}_{suffix}.jsonl"
            if file_id is None:
                path.write_text("")  # no failures (or no successes): an empty file, so both paths always exist
            else:
                download(client, file_id, path)
            for line in read_jsonl(path):
                summary.add(line, prices, batch.model, ok)
            err.print(f"wrote {path}")
        out.print(f"[bold]{batch.id}[/] {batch.status}")
        out.print(summary.table())
        errors = summary.errors_table()
        if errors is not None:
            out.print(errors)


def cancel(batch_id: Annotated[str, typer.Argument(help="The batch id.")],
           url: BrokerUrl = DEFAULT_BROKER_URL, api_key: ApiKey = None) -> None:
    """Cancel a batch: no new lines start; finished lines are kept in its result files."""
    with friendly_errors(Console(stderr=True)):
        batch = connect(url, api_key).batches.cancel(batch_id)
        typer.echo(f"{batch.id} {batch.status}")


def usage(start_date: Annotated[str | None, typer.Option(help="First UTC day, YYYY-MM-DD.")] = None,
          end_date: Annotated[str | None, typer.Option(help="Last UTC day, YYYY-MM-DD.")] = None,
          url: BrokerUrl = DEFAULT_BROKER_URL, api_key: ApiKey = None) -> None:
    """Requests, tokens and cost per day, provider, model and route; this month's spend and budget."""
    out = Console()
    with friendly_errors(Console(stderr=True)):
        params = {k: v for k, v in (("start_date", start_date), ("end_date", end_date)) if v}
        report: Any = connect(url, api_key).get("/usage", cast_to=object, options={"params": params})
    table = Table(title="Usage", title_justify="left")
    for column in ("day", "provider", "model", "route", "requests", "input tokens", "output tokens", "cost"):
        table.add_column(column, justify="right" if column in ("requests", "input tokens", "output tokens", "cost")
                         else "left")
    for row in report["data"]:
        table.add_row(row["day"], row["provider"], row["model"], row["route"], f"{row['requests']:,}",
                      f"{row['input_tokens']:,}", f"{row['output_tokens']:,}", usd(row["cost_usd"]))
    table.add_row("total", "", "", "", f"{report['total_requests']:,}", "", "", usd(report["total_cost_usd"]))
    out.print(table)
    budget = report.get("monthly_budget_usd")
    out.print(f"this month: {usd(report['month_to_date_cost_usd'])}"
              + (f" of a {usd(budget)} budget" if budget is not None else " (no monthly budget)"))


def register(app: typer.Typer) -> None:
    """Add the batch commands to the ``broker`` app."""
    for command in (submit, status, results, cancel, usage):
        app.command()(command)
