"""Reading a batch's result files: download them, and sum counts, tokens, cost and error codes line by line."""

import json
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import openai
from rich.table import Table

from cli.client import Prices, usd


def download(client: openai.OpenAI, file_id: str, path: Path) -> None:
    """Stream a file's content to ``path`` (result files can be large)."""
    with client.files.with_streaming_response.content(file_id) as response:
        response.stream_to_file(path)


def iter_result_lines(client: openai.OpenAI, file_id: str | None) -> Iterator[dict[str, Any]]:
    """The decoded lines of a result file, streamed; nothing when there is no file."""
    if file_id is None:
        return
    with client.files.with_streaming_response.content(file_id) as response:
        for line in response.iter_lines():
            if line.strip():
                yield json.loads(line)


def read_jsonl(path: Path) -> Iterator[dict[str, Any]]:
    with path.open(encoding="utf-8") as fh:
        for line in fh:
            if line.strip():
                yield json.loads(line)


def response_body(line: dict[str, Any]) -> dict[str, Any]:
    response = line.get("response")
    body = response.get("body") if isinstance(response, dict) else None
    return body if isinstance(body, dict) else {}


def usage_tokens(body: dict[str, Any]) -> tuple[int, int]:
    """(input, output) tokens of a response body, whichever endpoint's usage shape it carries."""
    usage = body.get("usage")
    if not isinstance(usage, dict):
        return 0, 0
    return (int(usage.get("prompt_tokens", usage.get("input_tokens", 0)) or 0),
            int(usage.get("completion_tokens", usage.get("output_tokens", 0)) or 0))


def line_cost(line: dict[str, Any], prices: Prices, fallback_model: str | None) -> float | None:
    body = response_body(line)
    model = body.get("model") if isinstance(body.get("model"), str) else None
    if prices.resolve(model) is None:
        model = fallback_model
    return prices.cost(model, *usage_tokens(body))


def error_code(line: dict[str, Any]) -> str:
    """The reason a line failed: our error code, or the upstream's (else its HTTP status)."""
    error = line.get("error")
    if isinstance(error, dict) and error.get("code"):
        return str(error["code"])
    response = line.get("response")
    status = response.get("status_code") if isinstance(response, dict) else None
    upstream = response_body(line).get("error")
    if isinstance(upstream, dict) and upstream.get("code"):
        return f"{upstream['code']} (HTTP {status})"
    return f"HTTP {status}" if status else "unknown"


def error_message(line: dict[str, Any]) -> str:
    error = line.get("error")
    if isinstance(error, dict) and error.get("message"):
        return str(error["message"])
    upstream = response_body(line).get("error")
    if isinstance(upstream, dict) and upstream.get("message"):
        return str(upstream["message"])
    return error_code(line)


@dataclass
class ResultSummary:
    """What a batch's output and error files add up to."""

    succeeded: int = 0
    failed: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cost: float | None = 0.0
    error_codes: Counter[str] = field(default_factory=Counter)

    def add(self, line: dict[str, Any], prices: Prices, fallback_model: str | None, ok: bool) -> None:
        if ok:
            self.succeeded += 1
        else:
            self.failed += 1
            self.error_codes[error_code(line)] += 1
        tokens_in, tokens_out = usage_tokens(response_body(line))
        self.input_tokens += tokens_in
        self.output_tokens += tokens_out
        cost = line_cost(line, prices, fallback_model)
        if cost is None and (tokens_in or tokens_out):
            self.cost = None  # a price is missing: an honest "-" beats a wrong total
        elif self.cost is not None and cost is not None:
            self.cost += cost

    def as_dict(self) -> dict[str, Any]:
        return {"succeeded": self.succeeded, "failed": self.failed, "input_tokens": self.input_tokens,
                "output_tokens": self.output_tokens, "cost_usd": self.cost, "error_codes": dict(self.error_codes)}

    def table(self) -> Table:
        table = Table(show_header=False)
        table.add_column(style="bold", no_wrap=True)
        table.add_column(justify="right")
        for key, value in (("succeeded", f"{self.succeeded:,}"), ("failed", f"{self.failed:,}"),
                           ("input tokens", f"{self.input_tokens:,}"), ("output tokens", f"{self.output_tokens:,}"),
                           ("cost", usd(self.cost))):
            table.add_row(key, value)
        return table

    def errors_table(self) -> Table | None:
        if not self.error_codes:
            return None
        table = Table(title="errors", title_justify="left")
        table.add_column("code", style="red")
        table.add_column("lines", justify="right")
        for code, count in self.error_codes.most_common():
            table.add_row(code, f"{count:,}")
        return table
