"""Options shared by the commands that create batches (``submit``, ``schedules create``) and the read commands."""

import json
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

import typer

from cli.client import CliError

Route = Literal["auto", "realtime", "native_batch", "off_peak"]

RouteOption = Annotated[Route | None, typer.Option(
    "--route", help="auto picks the cheapest way that meets the window.", show_default=False)]
MetadataOption = Annotated[list[str] | None, typer.Option(
    "--metadata", help="KEY=VALUE on the batch (repeatable).", show_default=False)]
MaxCostOption = Annotated[float | None, typer.Option(
    "--max-cost-usd", min=0.0, help="Stop the batch once its lines cost this much.", show_default=False)]
WebhookOption = Annotated[str | None, typer.Option(
    "--webhook-url", help="Told (signed POST) when the batch ends.", show_default=False)]
NotBeforeOption = Annotated[str | None, typer.Option(
    "--not-before", help="Start no line before: unix seconds or ISO 8601 (UTC unless it names a zone).",
    show_default=False)]
ConstraintsOption = Annotated[str | None, typer.Option(
    "--constraints", help='Where lines may run, as JSON: \'{"regions": ["eu"], "providers": ["openai"]}\'.',
    show_default=False)]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON (for scripts) instead of tables.")]


def parse_metadata(pairs: list[str] | None) -> dict[str, str] | None:
    if not pairs:
        return None
    metadata: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise CliError(f"--metadata takes KEY=VALUE, not '{pair}'")
        metadata[key] = value
    return metadata


def parse_not_before(value: str | None) -> int | None:
    if value is None:
        return None
    if value.isdigit():
        return int(value)
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise CliError(f"--not-before takes unix seconds or an ISO 8601 time (2026-01-31T22:00), not '{value}'") \
            from None
    return int((moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp())


def parse_constraints(value: str | None) -> dict[str, Any] | None:
    if value is None:
        return None
    try:
        parsed = json.loads(value)
    except ValueError:
        parsed = None
    if not isinstance(parsed, dict):
        raise CliError(f'--constraints takes a JSON object such as \'{{"regions": ["eu"]}}\', not \'{value}\'')
    return parsed


def batch_extensions(route: Route | None, max_cost_usd: float | None, webhook_url: str | None,
                     not_before: str | None, constraints: str | None) -> dict[str, Any]:
    """Our batch extension fields (sent in ``extra_body``), only those given."""
    fields = {"route": route, "max_cost_usd": max_cost_usd, "webhook_url": webhook_url,
              "not_before": parse_not_before(not_before), "constraints": parse_constraints(constraints)}
    return {name: value for name, value in fields.items() if value is not None}


def print_json(data: Any) -> None:
    """``data`` as indented JSON on stdout (no colours, no wrapping: scripts read it)."""
    typer.echo(json.dumps(data, indent=2, default=str))
