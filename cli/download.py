"""``broker results``: a batch's output and error files on disk, summed up; a running batch's lines so far."""

from pathlib import Path
from typing import Annotated

import openai
import typer
from openai.types import Batch
from rich.console import Console

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
)
from cli.options import JsonOption, print_json
from cli.results import ResultSummary, download, read_jsonl


def download_so_far(client: openai.OpenAI, file_id: str, path: Path) -> bool:
    """A running batch's output lines finished so far (read page by page with ``?offset=``); True when the batch
    ended meanwhile and the file is whole."""
    offset = 0
    with path.open("wb") as fh:
        while True:
            page = client.files.with_raw_response.content(file_id, extra_query={"offset": offset})
            fh.write(page.content)
            if page.headers.get("x-file-complete") == "true":
                return True
            last = int(page.headers.get("x-last-line") or offset)
            if last == offset:
                return False
            offset = last


def _files(client: openai.OpenAI, batch: Batch, output_dir: Path, err: Console) -> list[tuple[Path, bool]]:
    """Write the batch's files; (path, holds successes) for each. A running batch has its output so far only."""
    output_dir.mkdir(parents=True, exist_ok=True)
    output, errors = output_dir / f"{batch.id}_output.jsonl", output_dir / f"{batch.id}_errors.jsonl"
    if batch.status not in TERMINAL:
        assert batch.output_file_id is not None
        if download_so_far(client, batch.output_file_id, output):
            return _files(client, client.batches.retrieve(batch.id), output_dir, err)  # it just ended
        total, done, failed = line_counts(batch)
        err.print(f"batch {batch.id} is {batch.status}: {done - failed:,} of {total:,} lines have succeeded so far "
                  f"(in {output}); failed lines come with the error file when it ends. Run again for more.")
        return [(output, True)]
    for file_id, path in ((batch.output_file_id, output), (batch.error_file_id, errors)):
        if file_id is None:
            path.write_text("")  # no failures (or no successes): an empty file, so both paths always exist
        else:
            download(client, file_id, path)
    return [(output, True), (errors, False)]


def results(batch_id: Annotated[str, typer.Argument(help="The batch id.")],
            output_dir: Annotated[Path, typer.Option("--output-dir", "-o", help="Folder for the two files.",
                                                     file_okay=False)] = Path("."),
            as_json: JsonOption = False, url: BrokerUrl = DEFAULT_BROKER_URL, api_key: ApiKey = None) -> None:
    """Download a batch's output and error files (<id>_output.jsonl, <id>_errors.jsonl) and sum them up; a
    running batch's output so far."""
    out, err = Console(), Console(stderr=True)
    with friendly_errors(err):
        client = connect(url, api_key)
        batch = client.batches.retrieve(batch_id)
        if batch.output_file_id is None and batch.error_file_id is None:
            if batch.status not in TERMINAL:
                raise CliError(f"batch {batch.id} is still {batch.status}: no line has run yet "
                               f"(`broker status {batch.id}`)")
            err.print(batch_table(batch, Prices.fetch(client)))
            raise CliError(f"batch {batch.id} ended {batch.status} without result files")
        prices = Prices.fetch(client)
        summary = ResultSummary()
        for path, ok in _files(client, batch, output_dir, err):
            for line in read_jsonl(path):
                summary.add(line, prices, batch.model, ok)
            err.print(f"wrote {path}")
        if as_json:
            print_json({"batch": batch.id, "status": batch.status, **summary.as_dict()})
            return
        out.print(f"[bold]{batch.id}[/] {batch.status}")
        out.print(summary.table())
        errors = summary.errors_table()
        if errors is not None:
            out.print(errors)
