"""``broker label``: classify every row of a CSV file with a model, as one batch, into ``DATA.labelled.csv``.

One chat line per row: a system prompt with the instructions and the label set, the row's text as the user
message, and the answer constrained to the label set with structured outputs (a JSON schema whose ``label``
is an ``enum``). The labelled file keeps every original column and adds ``label``, ``raw_answer`` and
``cost_usd``; an answer that is not one of the labels leaves ``label`` empty and keeps the raw answer.
"""

import csv
import io
import json
import tempfile
from collections import Counter
from collections.abc import Collection, Iterator, Sequence
from dataclasses import dataclass
from itertools import islice
from pathlib import Path
from typing import Annotated, Any

import openai
import typer
from openai.types import Batch
from rich.console import Console
from rich.table import Table

from cli.batches import DEFAULT_WINDOW, Priority, Window, create_batch
from cli.client import (
    DEFAULT_BROKER_URL,
    ApiKey,
    BrokerUrl,
    CliError,
    Prices,
    batch_table,
    connect,
    friendly_errors,
    usd,
    wait_for_batch,
)
from cli.results import error_message, iter_result_lines, line_cost, response_body

CHAT_ENDPOINT = "/v1/chat/completions"
LABEL_COLUMNS = ("label", "raw_answer", "cost_usd")  #: added to the original columns, in this order
ERROR_PREFIX = "[error] "  #: marks raw_answer of a row whose request failed
SKIPPED = "[empty text, not sent]"  #: raw_answer of a row whose text is empty (nothing to label, no cost)
SNIFF_BYTES = 64 * 1024  #: read to tell the CSV delimiter
SNIFF_ROWS = 50  #: rows of that sample compared
DELIMITERS = ",;\t|"  #: the delimiters a CSV file may use


def parse_labels(raw: str) -> list[str]:
    labels = list(dict.fromkeys(part.strip() for part in raw.split(",") if part.strip()))
    if not labels:
        raise CliError("--labels needs at least one label, e.g. --labels positive,negative,neutral")
    return labels


def system_prompt(prompt: str, labels: Sequence[str]) -> str:
    return (f"{prompt.strip()}\n\nAnswer with exactly one label from this set: {', '.join(labels)}.\n"
            'Reply with a JSON object: {"label": "<one of the labels>"}.')


def response_format(labels: Sequence[str]) -> dict[str, Any]:
    """OpenAI structured outputs: the answer must be ``{"label": <one of labels>}``."""
    schema = {"type": "object", "properties": {"label": {"type": "string", "enum": list(labels)}},
              "required": ["label"], "additionalProperties": False}
    return {"type": "json_schema", "json_schema": {"name": "label", "strict": True, "schema": schema}}


def sniff_delimiter(path: Path) -> str:
    """The file's delimiter (``;`` as spreadsheets write CSV in many locales), else a comma: the candidate that
    splits the header into most columns with the most rows agreeing. ``csv.Sniffer`` gives up on a file whose
    texts hold the other delimiters ("great, loved it" in a ``;`` file), which is most real files."""
    with path.open(encoding="utf-8-sig", newline="") as fh:
        sample = fh.read(SNIFF_BYTES)
    best, best_score = ",", (0, 0)
    for delimiter in DELIMITERS:
        try:
            rows = list(islice((r for r in csv.reader(io.StringIO(sample), delimiter=delimiter) if r), SNIFF_ROWS))
        except csv.Error:
            continue
        if rows and len(rows[0]) > 1:
            score = (sum(len(row) == len(rows[0]) for row in rows[1:]), len(rows[0]))
            if score > best_score:
                best, best_score = delimiter, score
    return best


def _csv_rows(path: Path) -> Iterator[list[str]]:
    delimiter = sniff_delimiter(path)
    try:
        with path.open(encoding="utf-8-sig", newline="") as fh:
            yield from (row for row in csv.reader(fh, delimiter=delimiter) if row)  # a blank line is no row
    except csv.Error as exc:
        raise CliError(f"{path} is not a readable CSV file: {exc}") from None


def _text_index(header: list[str] | None, path: Path, column: str) -> int:
    if header is None:
        raise CliError(f"{path} is empty")
    if column not in header:
        raise CliError(f"{path} has no column '{column}' (columns: {', '.join(header)}); pick one with --text-column")
    return header.index(column)


def write_requests(path: Path, column: str, model: str, system: str, labels: Sequence[str],
                   target: Path) -> tuple[int, set[int]]:
    """Stream the CSV into batch input lines (``custom_id`` = ``row-<n>``); (rows, rows skipped for empty text)."""
    rows = _csv_rows(path)
    index = _text_index(next(rows, None), path, column)
    fmt = response_format(labels)
    count, skipped = 0, set()
    with target.open("w", encoding="utf-8") as out:
        for count, row in enumerate(rows, start=1):
            text = row[index] if index < len(row) else ""
            if not text.strip():
                skipped.add(count - 1)  # nothing to label: not sent, not paid for
                continue
            body = {"model": model, "response_format": fmt,
                    "messages": [{"role": "system", "content": system}, {"role": "user", "content": text}]}
            out.write(json.dumps({"custom_id": f"row-{count - 1}", "method": "POST", "url": CHAT_ENDPOINT,
                                  "body": body}, ensure_ascii=False) + "\n")
    if count == 0:
        raise CliError(f"{path} has a header but no rows")
    if len(skipped) == count:
        raise CliError(f"every row of {path} has an empty '{column}': nothing to label")
    return count, skipped


def answer_text(body: dict[str, Any]) -> str:
    choices = body.get("choices")
    message = choices[0].get("message") if isinstance(choices, list) and choices and isinstance(
        choices[0], dict) else None
    if not isinstance(message, dict):
        return ""
    content = message.get("content")
    return content if isinstance(content, str) else str(message.get("refusal") or "")


def parse_answer(text: str, labels: Sequence[str]) -> str:
    """The label an answer names (``{"label": …}`` or the bare label), or "" when it names none of ``labels``."""
    try:
        value: Any = json.loads(text)
    except ValueError:
        value = text
    if isinstance(value, dict):
        value = value.get("label")
    if not isinstance(value, str):
        return ""
    by_folded = {label.casefold(): label for label in labels}
    return by_folded.get(value.strip().casefold(), "")


@dataclass(frozen=True)
class Answer:
    label: str
    raw: str
    cost: float | None


def collect_answers(client: openai.OpenAI, batch: Batch, labels: Sequence[str], prices: Prices,
                    model: str) -> dict[str, Answer]:
    answers: dict[str, Answer] = {}
    for line in iter_result_lines(client, batch.output_file_id):
        raw = answer_text(response_body(line))
        answers[line["custom_id"]] = Answer(parse_answer(raw, labels), raw, line_cost(line, prices, model))
    for line in iter_result_lines(client, batch.error_file_id):
        answers[line["custom_id"]] = Answer("", ERROR_PREFIX + error_message(line), line_cost(line, prices, model))
    return answers


def _cost_text(cost: float | None) -> str:
    return "" if cost is None else f"{cost:.10f}".rstrip("0").rstrip(".")


def write_labelled(source: Path, target: Path, answers: dict[str, Answer],
                   skipped: Collection[int] = ()) -> Counter[str]:
    """Copy the CSV (in its own dialect) with the label columns filled in; how many rows got each label."""
    rows = _csv_rows(source)
    header = next(rows, None) or []
    columns = header + [name for name in LABEL_COLUMNS if name not in header]
    positions = [columns.index(name) for name in LABEL_COLUMNS]
    tally: Counter[str] = Counter()
    with target.open("w", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh, delimiter=sniff_delimiter(source))
        writer.writerow(columns)
        for n, row in enumerate(rows):
            missing = Answer("", SKIPPED, None) if n in skipped else Answer("", ERROR_PREFIX + "no result", None)
            answer = answers.get(f"row-{n}", missing)
            row = row + [""] * (len(columns) - len(row))
            for position, value in zip(positions, (answer.label, answer.raw, _cost_text(answer.cost)), strict=True):
                row[position] = value
            writer.writerow(row)
            tally[answer.label] += 1
    return tally


def summary_table(tally: Counter[str], labels: Sequence[str], answers: dict[str, Answer], skipped: int) -> Table:
    total = sum(tally.values()) or 1
    table = Table(title="Labels", title_justify="left")
    table.add_column("label")
    table.add_column("rows", justify="right")
    table.add_column("share", justify="right")
    for label in labels:
        table.add_row(label, f"{tally[label]:,}", f"{tally[label] / total:.1%}")
    failed = sum(1 for a in answers.values() if a.raw.startswith(ERROR_PREFIX))
    unlabelled = tally[""] - failed - skipped
    if unlabelled:
        table.add_row("[yellow](not a label)[/]", f"{unlabelled:,}", f"{unlabelled / total:.1%}")
    if failed:
        table.add_row("[red](request failed)[/]", f"{failed:,}", f"{failed / total:.1%}")
    if skipped:
        table.add_row("[dim](empty text, not sent)[/]", f"{skipped:,}", f"{skipped / total:.1%}")
    costs = [a.cost for a in answers.values()]
    table.add_section()
    table.add_row("cost", "", usd(None if None in costs else sum(c for c in costs if c is not None)))
    return table


def label(data: Annotated[Path, typer.Argument(help="CSV file with a header row.", exists=True, dir_okay=False,
                                               readable=True)],
          labels: Annotated[str, typer.Option("--labels", help="The label set, comma-separated: a,b,c.")],
          prompt: Annotated[str, typer.Option("--prompt", help="Instructions: what the labels mean.")],
          model: Annotated[str, typer.Option("--model", help="Chat model that labels the rows.")],
          text_column: Annotated[str, typer.Option("--text-column", help="Column holding the text.")] = "text",
          output: Annotated[Path | None, typer.Option("--output", "-o", dir_okay=False,
                                                      help="Where to write; default DATA.labelled.csv.")] = None,
          force: Annotated[bool, typer.Option("--force", help="Overwrite the output file if it exists.")] = False,
          window: Window = DEFAULT_WINDOW, priority: Priority = None,
          url: BrokerUrl = DEFAULT_BROKER_URL, api_key: ApiKey = None) -> None:
    """Label every row of a CSV file (any common delimiter) with one of a set of labels, as one batch; write
    DATA.labelled.csv. Rows with an empty text are not sent."""
    err = Console(stderr=True)
    target = output or data.with_suffix(".labelled.csv")
    with friendly_errors(err), tempfile.TemporaryDirectory(prefix="broker-label-") as tmp:
        if target.exists() and not force:
            raise CliError(f"{target} exists; pass --force to overwrite it (or -o to write elsewhere)")
        label_set = parse_labels(labels)
        client = connect(url, api_key)
        requests = Path(tmp) / f"{data.stem}.label.jsonl"
        rows, skipped = write_requests(data, text_column, model, system_prompt(prompt, label_set), label_set,
                                       requests)
        prices = Prices.fetch(client)
        batch = create_batch(client, requests, CHAT_ENDPOINT, window, priority, metadata={"broker_cli": "label"})
        err.print(f"labelling {rows - len(skipped):,} rows of {data} with {model} into {', '.join(label_set)}: "
                  f"batch [bold]{batch.id}[/]" + (f" ({len(skipped):,} rows with an empty text skipped)"
                                                  if skipped else ""))
        batch = wait_for_batch(client, batch, err, prices, model)
        if batch.output_file_id is None and batch.error_file_id is None:
            err.print(batch_table(batch, prices, model))
            raise CliError(f"batch {batch.id} ended {batch.status} without results; nothing written")
        answers = collect_answers(client, batch, label_set, prices, model)
        tally = write_labelled(data, target, answers, skipped)
        Console().print(summary_table(tally, label_set, answers, len(skipped)))
        err.print(f"wrote {target}")
        if batch.status != "completed":
            raise CliError(f"batch {batch.id} ended {batch.status}: rows without a result have no label")


def register(app: typer.Typer) -> None:
    """Add ``broker label`` to the ``broker`` app."""
    app.command()(label)
