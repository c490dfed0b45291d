"""Shared helpers for the benchmarks: free ports, subprocess services, JSONL builders, tables."""

import io
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


STARTUP_TIMEOUT = 120.0  #: seconds a service may take to answer (a loaded 2-core machine can take a minute)


def wait_http(url: str, timeout: float = STARTUP_TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            httpx.get(url, timeout=1.0)
            return
        except httpx.HTTPError:
            time.sleep(0.1)
    raise RuntimeError(f"{url} did not come up within {timeout}s")


@contextmanager
def simulator(*args: str) -> Iterator[str]:
    """``broker simulate`` in its own process; yields its OpenAI base URL."""
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "cli.main", "simulate", "--port", str(port), *args],
                            cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_http(f"http://127.0.0.1:{port}/_sim/stats")
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        proc.terminate()
        proc.wait(10)


@contextmanager
def broker_process(args: Sequence[str], env: dict[str, str], log_path: Path | None = None, root: Path = ROOT,
                   ) -> Iterator[tuple[str, int]]:
    """``broker <args> --port P`` in its own process (the code in ``root``: another checkout runs a reference); yields
    its base URL and process id once it answers."""
    port = free_port()
    with open(log_path or os.devnull, "w") as log:
        proc = subprocess.Popen([sys.executable, "-m", "cli.main", *args, "--port", str(port)], cwd=root,
                                env={**os.environ, **env}, stdout=log, stderr=log)
        try:
            wait_http(f"http://127.0.0.1:{port}/healthz", timeout=120)
            yield f"http://127.0.0.1:{port}/v1", proc.pid
        finally:
            proc.terminate()
            proc.wait(20)


@contextmanager
def broker_serve(providers_toml: str, env: dict[str, str] | None = None, threads: int = 32,
                 with_pid: bool = False, root: Path = ROOT) -> Iterator[Any]:
    """``broker serve --no-auth`` in its own process with the given catalogue (the code in ``root``); yields its base
    URL (and its process id, ``with_pid``)."""
    with tempfile.TemporaryDirectory() as tmp:
        catalogue = Path(tmp) / "providers.toml"
        catalogue.write_text(providers_toml)
        full_env = {"BROKER_DATA_DIR": tmp, "BROKER_PROVIDERS_FILE": str(catalogue),
                    "DATABASE_URL": f"sqlite:///{tmp}/broker.db", **(env or {})}
        with broker_process(["serve", "--no-auth", "--threads", str(threads)], full_env,
                            Path(tmp) / "serve.log", root) as (url, pid):
            yield (url, pid) if with_pid else url


@contextmanager
def broker_api(database_url: str, data_dir: str) -> Iterator[str]:
    """``broker api`` alone (no workers, no planner) with auth off; yields its base URL."""
    with broker_api_process(database_url, data_dir) as (url, _):
        yield url


@contextmanager
def postgres_database(admin_url: str) -> Iterator[str]:
    """A fresh, empty PostgreSQL database for one run; dropped afterwards."""
    import secrets

    import psycopg
    from sqlalchemy.engine import make_url

    base = make_url(admin_url.replace("postgresql+psycopg://", "postgresql://"))
    name = f"broker_bench_{secrets.token_hex(4)}"
    admin = base.render_as_string(hide_password=False)
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield base.set(database=name).render_as_string(hide_password=False)
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def chat_lines(n: int, model: str = "gpt-4o-mini", max_tokens: int | None = None) -> list[dict[str, object]]:
    body: dict[str, object] = {"model": model}
    if max_tokens:
        body["max_tokens"] = max_tokens
    return [{"custom_id": f"req-{i}", "method": "POST", "url": "/v1/chat/completions",
             "body": {**body, "messages": [{"role": "user", "content": f"Say something about item {i}."}]}}
            for i in range(n)]


def embedding_lines(n: int, model: str = "text-embedding-3-small") -> list[dict[str, object]]:
    return [{"custom_id": f"emb-{i}", "method": "POST", "url": "/v1/embeddings",
             "body": {"model": model, "input": f"Document {i}: a paragraph about item {i}."}} for i in range(n)]


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far, all its threads (Linux /proc)."""
    with open(f"/proc/{pid}/stat") as fh:
        fields = fh.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def jsonl(lines: Sequence[dict[str, object]]) -> io.BytesIO:
    return io.BytesIO(("\n".join(json.dumps(line) for line in lines) + "\n").encode())


def print_table(title: str, columns: Sequence[str], rows: Sequence[Sequence[object]]) -> None:
    table = Table(title=title)
    for column in columns:
        table.add_column(column)
    for row in rows:
        table.add_row(*(str(cell) for cell in row))
    Console(width=160).print(table)


@contextmanager
def broker_api_process(database_url: str, data_dir: str, env: dict[str, str] | None = None,
                       log_path: Path | None = None) -> Iterator[tuple[str, int]]:
    """Like :func:`broker_api`, with extra environment; yields the base URL and the API process id."""
    # the API alone never touches Redis, but the role refuses to start without it (the planner and workers need it)
    full_env = {"BROKER_DATA_DIR": data_dir, "DATABASE_URL": database_url, "BROKER_AUTH_DISABLED": "true",
                "REDIS_URL": os.environ.get("BROKER_TEST_REDIS_URL", "redis://127.0.0.1:6379/0"), **(env or {})}
    single_host = ["--single-host"] if database_url.startswith("sqlite") else []
    with broker_process(["api", "--host", "127.0.0.1", *single_host], full_env, log_path) as found:
        yield found


def proc_status_kb(pid: int, key: str) -> int:
    """A ``kB`` figure from /proc/<pid>/status, e.g. ``VmHWM`` (peak RSS) or ``VmRSS`` (Linux only)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    raise KeyError(f"{key} not in /proc/{pid}/status")
