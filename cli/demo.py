"""``broker demo``: the main job end to end on the embedded default, with nothing installed but this package.

Starts the simulator (stand-in provider) and an embedded broker on loopback, then acts as a user would with the
official ``openai`` SDK: upload a chat batch and an embeddings batch, create, poll, download the results.
"""

import io
import json
import tempfile
import time
from pathlib import Path
from typing import Any

import openai
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from broker.auth import DEFAULT_PROJECT, create_key, get_or_create_project
from broker.catalogue import demo_catalogue
from broker.core import Core
from broker.db import session_scope
from broker.settings import Settings
from cli.client import usd
from cli.compose import Processes
from simulator import SimulatorConfig, SimulatorServer
from simulator.serving import ThreadedServer

TERMINAL = ("completed", "failed", "expired", "cancelled")


def _jsonl(lines: list[dict[str, Any]]) -> io.BytesIO:
    return io.BytesIO("".join(json.dumps(line) + "\n" for line in lines).encode())


def _chat(n: int) -> list[dict[str, Any]]:
    return [{"custom_id": f"chat-{i}", "method": "POST", "url": "/v1/chat/completions",
             "body": {"model": "gpt-4o-mini", "max_tokens": 64,
                      "messages": [{"role": "user", "content": f"Write a tagline for product #{i}."}]}}
            for i in range(n)]


def _embeddings(n: int) -> list[dict[str, Any]]:
    return [{"custom_id": f"doc-{i}", "method": "POST", "url": "/v1/embeddings",
             "body": {"model": "text-embedding-3-small", "input": f"Document {i}: notes about topic {i % 17}."}}
            for i in range(n)]


def _run_batches(client: openai.OpenAI, console: Console, lines: int) -> list[Any]:
    jobs = [("chat", "/v1/chat/completions", _chat(lines)), ("embeddings", "/v1/embeddings", _embeddings(lines))]
    batches = {}
    for name, endpoint, payload in jobs:
        upload = client.files.create(file=(f"{name}.jsonl", _jsonl(payload)), purpose="batch")
        batches[name] = client.batches.create(input_file_id=upload.id, endpoint=endpoint,  # type: ignore[arg-type]
                                              completion_window="24h")
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=console) as progress:
        tasks = {name: progress.add_task(f"{name} batch", total=lines) for name in batches}
        while any(b.status not in TERMINAL for b in batches.values()):
            time.sleep(0.2)
            for name, batch in batches.items():
                batches[name] = batch = client.batches.retrieve(batch.id)
                counts = batch.request_counts
                progress.update(tasks[name], completed=(counts.completed + counts.failed) if counts else 0)
    return list(batches.values())


def run_demo(lines: int, data_dir: Path | None, console: Console) -> bool:
    """Run the demo; True when every batch completed."""
    with tempfile.TemporaryDirectory() as tmp:
        root = data_dir or Path(tmp)
        settings = Settings(data_dir=root, database_url=f"sqlite:///{root}/broker.db", redis_url=None)
        with SimulatorServer(SimulatorConfig(latency_median_ms=30)) as sim:
            core = Core.open(settings, demo_catalogue(sim.base_url))
            procs = Processes(core)
            procs.start_workers(settings.worker_threads)
            procs.start_planner()
            try:
                with ThreadedServer(procs.app(), name="broker-api") as api, session_scope(core.engine) as session:
                    key = create_key(session, get_or_create_project(session, DEFAULT_PROJECT).id)
                    session.commit()
                    console.print(f"broker on {api.url}/v1 (SQLite + in-process queue), provider simulator on "
                                  f"{sim.base_url}")
                    client = openai.OpenAI(base_url=f"{api.url}/v1", api_key=key)
                    batches = _run_batches(client, console, lines)
                    _report(client, batches, console)
            finally:
                procs.stop()
    return all(b.status == "completed" for b in batches)


def _report(client: openai.OpenAI, batches: list[Any], console: Console) -> None:
    table = Table(title="Batches")
    for column in ("endpoint", "status", "done", "failed", "tokens", "route", "cost"):
        table.add_column(column)
    for b in batches:
        counts, usage, extra = b.request_counts, b.usage, b.model_extra or {}
        routes = ", ".join(sorted({r["route"] for r in (extra.get("routes") or {}).values()})) or "-"
        table.add_row(b.endpoint.removeprefix("/v1/"), b.status, str(counts.completed), str(counts.failed),
                      str(usage.total_tokens if usage else 0), routes, usd(extra.get("cost_usd")))
    console.print(table)
    chat = batches[0]
    if chat.output_file_id:
        first = json.loads(client.files.content(chat.output_file_id).text.splitlines()[0])
        answer = first["response"]["body"]["choices"][0]["message"]["content"]
        console.print(f"first output line: custom_id={first['custom_id']!r} -> {answer!r}")
