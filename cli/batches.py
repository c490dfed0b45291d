"""``broker submit | status | retry | cancel | usage`` (and ``results``, cli/download.py): batches for people, against
any broker, over HTTP.

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
from rich.console import Console, RenderableType

from cli.client import (
    DEFAULT_BROKER_URL,
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
from cli.download import results
from cli.failures import AllowFailures, fetch_failures, require_success, show_failures
from cli.options import (
    ConstraintsOption,
    JsonOption,
    MaxCostOption,
    MetadataOption,
    NotBeforeOption,
    RouteOption,
    WebhookOption,
    batch_extensions,
    parse_metadata,
    print_json,
)
from cli.tables import fitted_table

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
                 priority: str | None, metadata: dict[str, str] | None = None,
                 extra: dict[str, Any] | None = None) -> Batch:
    """Upload a batch input file and create the batch; our extensions (``extra``) ride in ``extra_body``."""
    with upload_path.open("rb") as fh:
        upload = client.files.create(file=(upload_path.name, fh), purpose="batch")
    extensions: dict[str, Any] = {**(extra or {}), "completion_window": window}
    if priority is not None:
        extensions["priority"] = priority_value(priority)
    try:
        return client.batches.create(input_file_id=upload.id, endpoint=cast(Any, endpoint), completion_window="24h",
                                     metadata=metadata, extra_body=extensions)
    except openai.APIStatusError:
        client.files.delete(upload.id)  # a refused batch leaves no orphan upload behind
        raise


def finish(client: openai.OpenAI, batch: Batch, console: Console, prices: Prices, model: str | None,
           allow_failures: bool) -> None:
    """The summary after waiting, with failed lines by error code; exit code 1 unless the batch completed and
    every line succeeded (``allow_failures`` forgives failed lines)."""
    console.print(batch_table(batch, prices, model))
    show_failures(client, batch, console)
    if batch.output_file_id or batch.error_file_id:
        console.print(f"download the results: broker results {batch.id} -o DIR")
    require_success(batch, allow_failures)


def submit(file: Annotated[Path, typer.Argument(help="Batch input file (OpenAI's JSONL request lines).",
                                                exists=True, dir_okay=False, readable=True)],
           model: Annotated[str | None, typer.Option("--model", help="Set body.model on every line.")] = None,
           endpoint: Annotated[str | None, typer.Option(
               "--endpoint", help="Batch endpoint; by default the lines' url.")] = None,
           window: Window = DEFAULT_WINDOW, priority: Priority = None, route: RouteOption = None,
           metadata: MetadataOption = None, max_cost_usd: MaxCostOption = None, webhook_url: WebhookOption = None,
           not_before: NotBeforeOption = None, constraints: ConstraintsOption = None, wait: Wait = False,
           allow_failures: Annotated[bool, AllowFailures] = False,
           url: BrokerUrl = DEFAULT_BROKER_URL, api_key: ApiKey = None) -> None:
    """Upload a JSONL file and create a batch; print its id (and, with --wait, its progress and summary: exit code
    1 unless every line succeeded)."""
    err = Console(stderr=True)
    with friendly_errors(err), tempfile.TemporaryDirectory(prefix="broker-submit-") as tmp:
        extra = batch_extensions(route, max_cost_usd, webhook_url, not_before, constraints)
        pairs = parse_metadata(metadata)
        client = connect(url, api_key)
        upload_path, line_url = prepare_input(file, model, Path(tmp))
        endpoint = endpoint or line_url
        if not endpoint:
            raise CliError(f"cannot tell the endpoint from {file}'s first line; pass --endpoint")
        batch = create_batch(client, upload_path, endpoint, window, priority, pairs, extra)
        typer.echo(batch.id)
        err.print(f"batch [bold]{batch.id}[/] created: {endpoint}, window {window}"
                  + (f", model {model}" if model else "") + (f", priority {priority}" if priority else "")
                  + "".join(f", {name} {value}" for name, value in extra.items()))
        if wait:
            prices = Prices.fetch(client)
            batch = wait_for_batch(client, batch, err, prices, model)
            finish(client, batch, err, prices, model, allow_failures)


def status(batch_id: Annotated[str | None, typer.Argument(help="A batch id; none lists recent batches.")] = None,
           limit: Annotated[int, typer.Option(help="Batches listed.", min=1, max=100)] = DEFAULT_LIST_LIMIT,
           as_json: JsonOption = False, url: BrokerUrl = DEFAULT_BROKER_URL, api_key: ApiKey = None) -> None:
    """One batch in detail (with its failed lines by error code), or a table of recent batches."""
    out = Console()
    with friendly_errors(Console(stderr=True)):
        client = connect(url, api_key)
        if batch_id:
            batch = client.batches.retrieve(batch_id)
            if as_json:
                failures = fetch_failures(client, batch.id) if line_counts(batch)[2] else []
                print_json({**batch.model_dump(mode="json"), "failures": failures})
                return
            out.print(batch_table(batch, Prices.fetch(client)))
            show_failures(client, batch, out)
            return
        batches = client.batches.list(limit=limit).data
        if as_json:
            print_json([b.model_dump(mode="json") for b in batches])
        elif not batches:
            out.print("no batches yet: create one with `broker submit FILE.jsonl --model M`")
        else:
            out.print(batches_table(out, batches, Prices.fetch(client)))


def batches_table(console: Console, batches: list[Batch], prices: Prices) -> RenderableType:
    rows = []
    for b in batches:
        total, done, failed = line_counts(b)
        rows.append((b.id, b.status, b.endpoint, b.model or "-", f"{done}/{total}", str(failed), when(b.created_at),
                     usd(prices.batch_cost(b))))
    return fitted_table(console, "Recent batches", ("batch", "status", "endpoint", "model", "done", "failed",
                                                    "created", "cost"), rows, right=("done", "failed", "cost"))


def cancel(batch_id: Annotated[str, typer.Argument(help="The batch id.")],
           url: BrokerUrl = DEFAULT_BROKER_URL, api_key: ApiKey = None) -> None:
    """Cancel a batch: no new lines start; finished lines are kept in its result files."""
    with friendly_errors(Console(stderr=True)):
        batch = connect(url, api_key).batches.cancel(batch_id)
        typer.echo(f"{batch.id} {batch.status}")


def retry(batch_id: Annotated[str, typer.Argument(help="The batch id.")], wait: Wait = False,
          allow_failures: Annotated[bool, AllowFailures] = False,
          url: BrokerUrl = DEFAULT_BROKER_URL, api_key: ApiKey = None) -> None:
    """Run a finished batch's failed lines again, in place (lines that succeeded are kept)."""
    err = Console(stderr=True)
    with friendly_errors(err):
        client = connect(url, api_key)
        batch = client.post(f"/batches/{batch_id}/retry", cast_to=Batch)
        total, done, failed = line_counts(batch)
        typer.echo(f"{batch.id} {batch.status}")
        err.print(f"retrying {total - done:,} failed lines of {batch.id}, window {batch.completion_window}")
        if wait:
            prices = Prices.fetch(client)
            finish(client, wait_for_batch(client, batch, err, prices), err, prices, None, allow_failures)


USAGE_COLUMNS = ("day", "provider", "model", "route", "requests", "input tokens", "output tokens", "cost")


def usage(start_date: Annotated[str | None, typer.Option(help="First UTC day, YYYY-MM-DD.")] = None,
          end_date: Annotated[str | None, typer.Option(help="Last UTC day, YYYY-MM-DD.")] = None,
          as_json: JsonOption = False, url: BrokerUrl = DEFAULT_BROKER_URL, api_key: ApiKey = None) -> None:
    """Requests, tokens and cost per day, provider, model and route; this month's spend and budget."""
    out = Console()
    with friendly_errors(Console(stderr=True)):
        params = {k: v for k, v in (("start_date", start_date), ("end_date", end_date)) if v}
        report: Any = connect(url, api_key).get("/usage", cast_to=object, options={"params": params})
    if as_json:
        print_json(report)
        return
    rows = [(row["day"], row["provider"], row["model"], row["route"], f"{row['requests']:,}",
             f"{row['input_tokens']:,}", f"{row['output_tokens']:,}", usd(row["cost_usd"])) for row in report["data"]]
    rows.append(("total", "", "", "", f"{report['total_requests']:,}", "", "", usd(report["total_cost_usd"])))
    out.print(fitted_table(out, "Usage", USAGE_COLUMNS, rows, right=USAGE_COLUMNS[4:]))
    budget = report.get("monthly_budget_usd")
    out.print(f"this month: {usd(report['month_to_date_cost_usd'])}"
              + (f" of a {usd(budget)} budget" if budget is not None else " (no monthly budget)"))


def register(app: typer.Typer) -> None:
    """Add the batch commands to the ``broker`` app."""
    for command in (submit, status, results, cancel, retry, usage):
        app.command()(command)
