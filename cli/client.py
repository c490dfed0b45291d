"""The CLI's side of the wire: a broker reached over HTTP with the official ``openai`` SDK, like any user's code.

Connection options (``--url`` / ``BROKER_URL``, ``--api-key`` / ``BROKER_API_KEY`` or ``OPENAI_API_KEY``), one
place that turns API and connection errors into a one-line message and exit code 1, model prices read from the
``pricing`` extension of ``/v1/models``, and waiting for a batch behind a rich progress bar.
"""

import math
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any

import openai
import typer
from openai.types import Batch
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn
from rich.table import Table
from rich.text import Text

DEFAULT_BROKER_URL = "http://127.0.0.1:8000/v1"  #: where ``broker serve`` listens by default
DEFAULT_TIMEOUT_SECONDS = 60.0  #: per HTTP call to the broker (uploads of big files included)
POLL_FIRST_SECONDS = 0.1  #: first pause between two status polls, so short batches end quickly
POLL_MAX_SECONDS = 1.0  #: pauses grow to this: a long batch costs one request a second
POLL_GROWTH = 1.5  #: factor between two successive pauses
TERMINAL = ("completed", "failed", "expired", "cancelled")
TOKENS_PER_PRICE_UNIT = 1_000_000  #: prices are USD per 1M tokens
SIGNIFICANT_DIGITS = 3  #: of a cost below a dollar
ERRORS_SHOWN = 10  #: validation errors listed in a batch's detail (``--json`` has them all)

BrokerUrl = Annotated[str, typer.Option("--url", envvar="BROKER_URL", help="Broker API base URL.")]
ApiKey = Annotated[str | None, typer.Option(
    "--api-key", envvar=["BROKER_API_KEY", "OPENAI_API_KEY"], show_envvar=True,
    help="API key (`broker serve` / `broker keys create` print one).")]


class CliError(Exception):
    """A failure to report to the person at the terminal in one line (exit code 1)."""


def connect(url: str, api_key: str | None) -> openai.OpenAI:
    if not api_key:
        raise CliError("no API key: pass --api-key or set BROKER_API_KEY (or OPENAI_API_KEY); "
                       "`broker serve` prints one at start")
    return openai.OpenAI(base_url=url, api_key=api_key, timeout=DEFAULT_TIMEOUT_SECONDS)


def fail(console: Console, message: str) -> typer.Exit:
    console.print(Text.assemble(("error: ", "bold red"), message))
    return typer.Exit(1)


def api_message(exc: openai.APIStatusError) -> str:
    body = exc.body
    if isinstance(body, dict) and isinstance(body.get("message"), str):
        return str(body["message"])
    return exc.message


@contextmanager
def friendly_errors(console: Console) -> Iterator[None]:
    """Turn our own, API and connection errors into ``error: …`` and exit code 1, never a traceback."""
    try:
        yield
    except CliError as exc:
        raise fail(console, str(exc)) from None
    except openai.APIStatusError as exc:
        raise fail(console, f"{api_message(exc)} (HTTP {exc.status_code})") from None
    except openai.APIConnectionError as exc:
        raise fail(console, f"cannot reach the broker at {exc.request.url} ({exc.message}); is it running? "
                            "Set --url or BROKER_URL.") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise fail(console, str(exc)) from None


@dataclass(frozen=True)
class Prices:
    """USD per 1M tokens (input, output) per model, from the broker's ``/v1/models``."""

    table: dict[str, tuple[float, float]]

    @classmethod
    def fetch(cls, client: openai.OpenAI) -> "Prices":
        table: dict[str, tuple[float, float]] = {}
        for model in client.models.list():
            pricing = (model.model_extra or {}).get("pricing")
            if isinstance(pricing, dict):
                table[model.id] = (float(pricing.get("input") or 0.0), float(pricing.get("output") or 0.0))
        return cls(table)

    def resolve(self, model: str | None) -> tuple[float, float] | None:
        """The price of ``model``; a dated name (``gpt-4o-mini-2024-07-18``) falls back to its base name."""
        if not model:
            return None
        if model in self.table:
            return self.table[model]
        bases = [name for name in self.table if model.startswith(name + "-")]
        return self.table[max(bases, key=len)] if bases else None

    def cost(self, model: str | None, input_tokens: int, output_tokens: int) -> float | None:
        price = self.resolve(model)
        if price is None:
            return None
        return (input_tokens * price[0] + output_tokens * price[1]) / TOKENS_PER_PRICE_UNIT

    def batch_cost(self, batch: Batch, model: str | None = None) -> float | None:
        """The broker's own account when it gives one (it knows each line's route); else usage x list price."""
        if isinstance(accounted := extra(batch, "cost_usd"), int | float):
            return float(accounted)
        usage = batch.usage
        if usage is None:
            return 0.0
        return self.cost(batch.model or model, usage.input_tokens, usage.output_tokens)


def usd(value: float | None) -> str:
    """A cost for people: cents, or three significant digits below a dollar ($0.000123: batches of cheap models cost
    fractions of a cent, and a budget of 0.001 is not $0.00); "-" when unknown."""
    if value is None:
        return "-"
    if value == 0 or abs(value) >= 1:
        return f"${value:,.2f}"
    decimals = max(2, SIGNIFICANT_DIGITS - 1 - math.floor(math.log10(abs(value))))
    text = f"{value:.{decimals}f}".rstrip("0")
    return "$" + (text + "0" if len(text.partition(".")[2]) < 2 else text)


def when(timestamp: int | None) -> str:
    return datetime.fromtimestamp(timestamp).strftime("%Y-%m-%d %H:%M:%S") if timestamp else "-"


def duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    minutes, secs = divmod(int(round(seconds)), 60)
    hours, minutes = divmod(minutes, 60)
    if hours:
        return f"{hours}h{minutes:02d}m"
    return f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"


def line_counts(batch: Batch) -> tuple[int, int, int]:
    """(total, done, failed) lines of a batch; done counts completed and failed lines."""
    counts = batch.request_counts
    if counts is None:
        return 0, 0, 0
    return counts.total, counts.completed + counts.failed, counts.failed


def extra(batch: Batch, name: str) -> Any:
    """One of our extension fields on a Batch object (the SDK keeps unknown fields as extras)."""
    return (batch.model_extra or {}).get(name)


@dataclass
class _Watch:
    """Rate and ETA measured from when this CLI started watching."""

    started: float
    done_at_start: int

    def rate(self, done: int) -> float | None:
        elapsed = time.monotonic() - self.started
        return (done - self.done_at_start) / elapsed if elapsed > 0 and done > self.done_at_start else None


def _progress(console: Console) -> Progress:
    return Progress(TextColumn("[bold]{task.description}"), BarColumn(bar_width=24), MofNCompleteColumn(),
                    TextColumn("[red]{task.fields[failed]} failed"), TextColumn("{task.fields[rate]}"),
                    TextColumn("ETA {task.fields[eta]}"), TextColumn("cost {task.fields[cost]}"),
                    console=console)


def _update(progress: Progress, task: TaskID, batch: Batch, watch: _Watch, prices: Prices,
            model: str | None) -> None:
    total, done, failed = line_counts(batch)
    rate = watch.rate(done)
    eta = 0.0 if batch.status in TERMINAL else (total - done) / rate if rate and total else None
    progress.update(task, description=batch.status, total=total or None, completed=done,
                    failed=failed, rate=f"{rate:,.0f} lines/s" if rate else "- lines/s",
                    eta=duration(eta), cost=usd(prices.batch_cost(batch, model)))


def wait_for_batch(client: openai.OpenAI, batch: Batch, console: Console, prices: Prices,
                   model: str | None = None) -> Batch:
    """Poll until ``batch`` ends, with a progress bar (lines done/failed, rate, ETA, cost so far)."""
    watch = _Watch(time.monotonic(), line_counts(batch)[1])
    pause = POLL_FIRST_SECONDS
    try:
        with _progress(console) as progress:
            task = progress.add_task(batch.status, total=None, failed=0, rate="", eta="-", cost="-")
            while True:
                _update(progress, task, batch, watch, prices, model)
                if batch.status in TERMINAL:
                    return batch
                time.sleep(pause)
                pause = min(pause * POLL_GROWTH, POLL_MAX_SECONDS)
                batch = client.batches.retrieve(batch.id)
    except KeyboardInterrupt:
        console.print(f"stopped watching; {batch.id} carries on at the broker (`broker status {batch.id}`)")
        raise typer.Exit(130) from None


def batch_table(batch: Batch, prices: Prices, model: str | None = None) -> Table:
    """One batch in detail, as a two-column table."""
    table = Table(show_header=False, box=None, padding=(0, 2))
    table.add_column(style="bold", no_wrap=True)
    table.add_column(overflow="fold")
    counts, usage = batch.request_counts, batch.usage
    rows = [
        ("batch", batch.id), ("status", batch.status), ("endpoint", batch.endpoint),
        ("model", batch.model or model or "-"), ("priority", str(extra(batch, "priority") or "-")),
        ("window", batch.completion_window), ("created", when(batch.created_at)),
        ("expires", when(batch.expires_at)), ("ended", when(_ended_at(batch))),
        ("lines", f"{counts.total} total, {counts.completed} completed, {counts.failed} failed" if counts else "-"),
        ("tokens", f"{usage.input_tokens:,} in, {usage.output_tokens:,} out" if usage else "-"),
        ("cost", usd(prices.batch_cost(batch, model))), ("routes", _routes(batch)),
        ("output file", batch.output_file_id or "-"), ("error file", batch.error_file_id or "-"),
    ]
    for key, value in rows:
        table.add_row(key, value)
    errors = (batch.errors.data or []) if batch.errors else []
    for error in errors[:ERRORS_SHOWN]:
        where = f"line {error.line}: " if error.line is not None else ""  # a file-level error has no line
        table.add_row("[red]invalid[/]", escape(f"{where}{error.code}: {error.message}"))
    if len(errors) > ERRORS_SHOWN:
        table.add_row("", f"… and {len(errors) - ERRORS_SHOWN} more errors (`broker status {batch.id} --json` "
                          "lists them all)")
    return table


def _routes(batch: Batch) -> str:
    """Where each model's lines run and how, e.g. ``gpt-4o-mini: openai native_batch``."""
    routes = extra(batch, "routes")
    if not isinstance(routes, dict) or not routes:
        return "-"
    return "; ".join(f"{model}: {r.get('provider')} {r.get('route')}" for model, r in routes.items()
                     if isinstance(r, dict))


def _ended_at(batch: Batch) -> int | None:
    return batch.completed_at or batch.failed_at or batch.expired_at or batch.cancelled_at
