"""Why lines failed, as people read it: the ``/v1/batches/{id}/failures`` extension as a table (code, lines, first
message), and the exit code of a command that waited for a batch."""

from typing import Any

import openai
import typer
from openai.types import Batch
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from cli.client import CliError, line_counts

AllowFailures = typer.Option("--allow-failures", help="Exit 0 even when some lines failed.")


def fetch_failures(client: openai.OpenAI, batch_id: str) -> list[dict[str, Any]]:
    """The batch's failed lines grouped by error code, most frequent first."""
    page: Any = client.get(f"/batches/{batch_id}/failures", cast_to=object)
    return list(page.get("data") or []) if isinstance(page, dict) else []


def failures_table(groups: list[dict[str, Any]]) -> Table:
    table = Table(title="failed lines by error", title_justify="left")
    table.add_column("code", style="red", no_wrap=True)
    table.add_column("lines", justify="right", no_wrap=True)
    table.add_column("first message", overflow="fold")
    for group in groups:
        table.add_row(escape(str(group.get("code"))), f"{group.get('count', 0):,}",
                      escape(str(group.get("message") or "-")))
    return table


def show_failures(client: openai.OpenAI, batch: Batch, console: Console) -> list[dict[str, Any]]:
    """Print the breakdown when lines failed; the groups (empty when none failed)."""
    if not line_counts(batch)[2]:
        return []
    groups = fetch_failures(client, batch.id)
    if groups:
        console.print(failures_table(groups))
    return groups


def require_success(batch: Batch, allow_failures: bool) -> None:
    """Exit code 1 unless the batch completed with every line succeeded (or ``allow_failures`` forgives lines)."""
    total, _, failed = line_counts(batch)
    if batch.status != "completed":
        raise CliError(f"batch {batch.id} ended {batch.status}")
    if failed and not allow_failures:
        raise CliError(f"{failed:,} of {total:,} lines failed (see above; --allow-failures exits 0 anyway); "
                       f"`broker retry {batch.id}` runs them again")
