"""Scale: one 1,000,000-line batch, a backlog of 100 batches, and 1 GB streamed in and out of the API.

Issue "Dispatch engine", item "Scale". Three measurements, each printed beside its target:

1. **Intake.** ``broker api`` in its own process (SQLite; PostgreSQL too with ``--postgres``). A ``--lines``-line
   chat JSONL is generated into a temp file, uploaded as a streamed multipart body (httpx reads the file in
   pieces), a batch is created on it and polled until ``in_progress``: lines/s of upload + validation + bulk
   insert, and the API process's peak RSS while doing it (shown, no target).
2. **Planner tick time.** In this process, a :class:`broker.planner.Planner` on the same database whose ``send``
   drops every message (no workers). Mean and p95 of ``tick()`` over ``--ticks`` ticks, in two modes:

   - *full window*: the provider's ``max_concurrency`` lines are leased, so a tick finds no room to release
     (the steady state);
   - *free window*: every lease is expired before each tick (as a dead worker leaves them), so each tick takes
     the window back and claims a new one -- the reclaim and claim queries run on the big table every tick.
     ``max_attempts`` is set out of reach, so no line fails and every such tick does the same work.

   Cases, in order on one database: empty; small-table references (1,000-line batches at priority
   ``background``, so they get no claims once the others arrive); the big batch (one claim per free tick, like
   one reference batch); plus a backlog of 100 x 1,000-line batches over 10 projects (fair share: 11 claims per
   free tick, like 11 reference batches in 11 projects). Target: a tick at 1M pending <= 2x its reference -- the
   empty database for a full window, the references doing the same claims for a free window (with nothing
   pending there is nothing to claim). Last, every statement one free-window tick runs on ``line`` is re-run
   under EXPLAIN (PostgreSQL: EXPLAIN ANALYZE in a rolled-back transaction, so the rows each one really reads
   are counted): none may scan ``line``, sort all of a batch's lines, or read more than 10,000 rows.
3. **API peak RSS.** A ``--gigabytes`` file uploaded to a fresh ``broker api`` process as a streamed multipart
   body, then downloaded back (``GET /v1/files/{id}/content``, read in pieces, hashed, dropped). Peak RSS is the
   API process's ``VmHWM`` (/proc/<pid>/status), reset between upload and download by writing 5 to
   /proc/<pid>/clear_refs. Target <= 300 MB for each. Temp files are deleted afterwards.

Run (Linux): ``python -m benchmarks.scale`` (full sizes, a few minutes on 2 cores);
quick: ``python -m benchmarks.scale --lines 50000 --gigabytes 0.1``;
with PostgreSQL too: ``python -m benchmarks.scale --postgres [postgresql://postgres@127.0.0.1:5432/test]``.
"""

import argparse
import hashlib
import json
import logging
import re
import statistics
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import Connection, Engine, event, text

from benchmarks._common import broker_api_process, postgres_database, print_table, proc_status_kb
from broker.auth import get_or_create_project
from broker.batches import create_batch
from broker.core import Core
from broker.db import session_scope
from broker.files import register_file
from broker.intake import validate_batch
from broker.planner import Planner
from broker.settings import DEFAULT_MAX_UPLOAD_BYTES, Settings
from schemas.batches import BatchCreate

CHAT = "/v1/chat/completions"
TICK_RATIO_TARGET = 2.0  #: a tick at 1M pending may take at most this many times its reference
RSS_TARGET_MB = 300.0  #: API peak RSS while streaming the big file in or out
INTAKE_TARGET_LINES_PER_SECOND = 25_000  #: intake.py's target (50,000 lines in <= 2 s), held at scale
BACKLOG_BATCHES, BACKLOG_LINES, BACKLOG_PROJECTS = 100, 1_000, 10
REFERENCE_LINES = 1_000  #: lines per reference batch (free-window references, on a small table)
HTTP_TIMEOUT = httpx.Timeout(600.0, connect=10.0)
WRITE_BLOCK_LINES = 10_000
READ_PIECE_BYTES = 1 << 20
SQLITE_LINE_SCAN = re.compile(r"^SCAN (line|l)\b")  #: a full pass over the line table (or its index) in SQLite
LINE_INDEXES = ("ix_line_", "uq_line_", "line_pkey")
MAX_LINE_ROWS_READ = 10_000  #: more rows of line read by one statement of a tick is a pass over a batch, not a claim
LINE = ('{{"custom_id": "{prefix}-{i}", "method": "POST", "url": "/v1/chat/completions", "body": '
        '{{"model": "gpt-4o-mini", "messages": [{{"role": "user", "content": "Say something about item {i}."}}]}}}}\n')


# --- input files ------------------------------------------------------------------------------------------------

def chat_blocks(prefix: str = "req") -> Iterator[bytes]:
    """Endless chat JSONL, ``WRITE_BLOCK_LINES`` lines per block; never more than one block in memory."""
    start = 0
    while True:
        yield "".join(LINE.format(prefix=prefix, i=i) for i in range(start, start + WRITE_BLOCK_LINES)).encode()
        start += WRITE_BLOCK_LINES


def write_chat_lines(path: Path, lines: int, prefix: str = "req") -> int:
    """Exactly ``lines`` chat lines into ``path``; returns its size in bytes."""
    with path.open("wb") as fh:
        for start, block in zip(range(0, lines, WRITE_BLOCK_LINES), chat_blocks(prefix), strict=False):
            take = min(WRITE_BLOCK_LINES, lines - start)
            fh.write(block if take == WRITE_BLOCK_LINES else b"".join(block.splitlines(keepends=True)[:take]))
    return path.stat().st_size


def write_chat_bytes(path: Path, size: int) -> tuple[int, str]:
    """Whole chat lines into ``path`` until it holds at least ``size`` bytes; returns (bytes, sha256)."""
    digest, written = hashlib.sha256(), 0
    with path.open("wb") as fh:
        for block in chat_blocks("big"):
            if written >= size:
                break
            fh.write(block)
            digest.update(block)
            written += len(block)
    return written, digest.hexdigest()


# --- the API in its own process -----------------------------------------------------------------------------------

def upload(client: httpx.Client, path: Path) -> str:
    """Multipart upload streamed from the open file (httpx reads it in pieces); returns the file id."""
    with path.open("rb") as fh:
        resp = client.post("files", files={"file": (path.name, fh, "application/jsonl")}, data={"purpose": "batch"})
    resp.raise_for_status()
    return str(resp.json()["id"])


def peak_rss_mb(pid: int) -> float:
    return proc_status_kb(pid, "VmHWM") / 1024


def reset_peak_rss(pid: int) -> bool:
    """Start a new VmHWM measurement window (Linux >= 4.0); False when the kernel refuses."""
    try:
        Path(f"/proc/{pid}/clear_refs").write_text("5")
        return True
    except OSError:
        return False


@dataclass(frozen=True)
class Intake:
    file_bytes: int
    upload_seconds: float
    total_seconds: float
    peak_rss_mb: float


def run_intake(base_url: str, pid: int, path: Path, lines: int) -> Intake:
    with httpx.Client(base_url=base_url + "/", timeout=HTTP_TIMEOUT) as client:
        start = time.perf_counter()
        file_id = upload(client, path)
        uploaded = time.perf_counter() - start
        resp = client.post("batches", json={"input_file_id": file_id, "endpoint": CHAT, "completion_window": "24h"})
        resp.raise_for_status()
        batch = resp.json()
        while batch["status"] == "validating":
            time.sleep(0.05)
            batch = client.get(f"batches/{batch['id']}").raise_for_status().json()
        total = time.perf_counter() - start
    assert batch["status"] == "in_progress" and batch["request_counts"]["total"] == lines, batch
    return Intake(path.stat().st_size, uploaded, total, peak_rss_mb(pid))


# --- planner ticks (in this process) ----------------------------------------------------------------------------

@dataclass(frozen=True)
class Ticks:
    scenario: str
    window: str  #: "full": the provider's window is leased; "free": every lease expired before each tick
    batches: int  #: batches in progress
    open_lines: int  #: lines of those batches not ended yet
    mean_ms: float
    p95_ms: float
    reference: "Ticks | None" = None  #: the small-table case doing the same work per tick
    at_scale: bool = False  #: the big batch is loaded: judged against the target

    @property
    def ratio(self) -> float:
        return self.mean_ms / self.reference.mean_ms if self.reference else 1.0


@dataclass
class TickBench:
    core: Core
    ticks: int
    results: list[Ticks] = field(default_factory=list)

    def __post_init__(self) -> None:
        c = self.core
        self.planner = Planner(c, send=lambda chunk: None)

    def expire_leases(self) -> None:
        """What a dead worker leaves behind, without waiting lease_seconds: every lease is past its deadline."""
        with self.core.engine.begin() as conn:
            for provider in self.core.catalogue.providers:
                conn.execute(text("UPDATE line SET lease_until = 0 WHERE provider = :p AND status = 'queued'"),
                             {"p": provider})

    def measure(self, scenario: str, window: str, reference: Ticks | None = None, at_scale: bool = False) -> Ticks:
        self.planner.tick()  # fills the window (and finishes anything left over from the set-up)
        samples = []
        for _ in range(self.ticks):
            if window == "free":
                self.expire_leases()
            start = time.perf_counter()
            self.planner.tick()
            samples.append(time.perf_counter() - start)
        with self.core.engine.connect() as conn:
            batches, open_lines = conn.execute(text(
                "SELECT count(*), coalesce(sum(total - completed - failed), 0) FROM batch WHERE status = 'in_progress'"
            )).one()
        p95 = sorted(samples)[max(0, round(0.95 * len(samples)) - 1)]
        result = Ticks(scenario, window, int(batches), int(open_lines), statistics.fmean(samples) * 1000, p95 * 1000,
                       reference, at_scale)
        self.results.append(result)
        return result


def add_batches(core: Core, project: str, count: int, lines: int, priority: str = "normal") -> None:
    """``count`` batches of ``lines`` chat lines through the real path: stored file, create, validate."""
    for _ in range(count):
        source = core.store.temp_path()
        write_chat_lines(source, lines)
        with session_scope(core.engine) as session:
            project_id = get_or_create_project(session, project).id
            stored = register_file(session, core.store, project_id=project_id, source=source,
                                   filename="backlog.jsonl", purpose="batch")
            row = create_batch(session, project_id,
                               BatchCreate(input_file_id=stored.id, endpoint=CHAT, priority=priority),
                               core.settings.min_window_seconds, catalogue=core.catalogue, store=core.store)
            batch_id = row.id
        validate_batch(core, batch_id)


@contextmanager
def recorded_statements(engine: Engine) -> Iterator[list[tuple[str, Any]]]:
    """Every statement the engine runs inside the block, with its driver parameters."""
    seen: list[tuple[str, Any]] = []

    def record(_conn: Any, _cursor: Any, statement: str, parameters: Any, _context: Any, _many: bool) -> None:
        seen.append((statement, parameters))

    event.listen(engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", record)


@dataclass(frozen=True)
class Plan:
    statement: str
    plan: str  #: the plan's nodes that touch ``line``
    rows_read: int | None  #: rows of ``line`` read, filtered out included (PostgreSQL: measured; SQLite: unknown)
    ms: float | None  #: execution time (PostgreSQL)
    full_pass: bool  #: a full scan of ``line``, a sort of everything matching, or more than MAX_LINE_ROWS_READ read

    def worse_than(self, other: "Plan") -> bool:
        return (self.full_pass, self.rows_read or 0) > (other.full_pass, other.rows_read or 0)


def _explain_sqlite(conn: Connection, statement: str, parameters: Any) -> Plan:
    details = [str(r[-1]) for r in conn.exec_driver_sql("EXPLAIN QUERY PLAN " + statement, parameters)]
    full = any(SQLITE_LINE_SCAN.match(d) or "TEMP B-TREE FOR ORDER BY" in d for d in details)
    shown = [d for d in details if d.startswith(("SEARCH", "SCAN", "USE TEMP")) and "CONSTANT ROW" not in d]
    return Plan(" ".join(statement.split()), "\n".join(shown), None, None, full)


def _explain_postgres(conn: Connection, statement: str, parameters: Any) -> Plan:
    """EXPLAIN ANALYZE (the caller rolls back): what each node on ``line`` really read."""
    (doc,) = conn.exec_driver_sql("EXPLAIN (ANALYZE, FORMAT JSON) " + statement, parameters).one()
    doc = doc if isinstance(doc, list) else json.loads(doc)
    shown, read, full, stack = [], 0, False, [doc[0]["Plan"]]
    while stack:
        node = stack.pop()
        stack.extend(reversed(node.get("Plans", [])))
        on_line = node.get("Relation Name") == "line" and node["Node Type"] != "ModifyTable"
        if on_line or str(node.get("Index Name", "")).startswith(LINE_INDEXES):
            loops = node.get("Actual Loops", 1)
            rows = (node.get("Actual Rows", 0) + node.get("Rows Removed by Filter", 0)
                    + node.get("Rows Removed by Index Recheck", 0)) * loops
            using = f" using {node['Index Name']}" if "Index Name" in node else ""
            shown.append(f"{node['Node Type']}{using}: {rows:,} rows")
            read += rows if on_line else 0
            full = full or node["Node Type"] == "Seq Scan"
    full = full or read > MAX_LINE_ROWS_READ
    return Plan(" ".join(statement.split()), "\n".join(shown), read, float(doc[0]["Execution Time"]), full)


def explain_tick(bench: TickBench) -> list[Plan]:
    """Run one free-window tick, then EXPLAIN every statement it ran on ``line``; the worst plan per statement."""
    bench.expire_leases()
    with recorded_statements(bench.core.engine) as seen:
        bench.planner.tick()
    engine = bench.core.engine
    explain = _explain_postgres if engine.dialect.name == "postgresql" else _explain_sqlite
    worst: dict[str, Plan] = {}
    for statement, parameters in seen:
        if " line" not in statement or not statement.lstrip().upper().startswith(("SELECT", "UPDATE", "DELETE")):
            continue
        with engine.connect() as conn:
            plan = explain(conn, statement, parameters)
            conn.rollback()
        if plan.statement not in worst or plan.worse_than(worst[plan.statement]):
            worst[plan.statement] = plan
    return list(worst.values())


# --- one database -------------------------------------------------------------------------------------------------

@dataclass
class DatabaseRun:
    name: str
    intake: Intake
    ticks: list[Ticks]
    plans: list[Plan]


def run_database(name: str, url: str, root: Path, lines: int, ticks: int) -> DatabaseRun:
    """Reference cases on a small table first, then the same shapes of work with the big batch loaded.

    Reference batches run at ``background`` priority, so once the big batch and the backlog (``normal``) are in,
    every claim goes to those: a free-window tick claims from one batch with the big batch alone (as with the
    one reference batch), and from 11 (one per project, fair share) with the backlog (as with 11 references).
    """
    data_dir = root / name
    # no line ever fails worker_lost: every free-window tick takes back and claims the same amount of work
    core = Core.open(Settings(data_dir=data_dir, database_url=url, auth_disabled=True, max_attempts=1 << 30))
    try:
        bench = TickBench(core, ticks)
        empty = bench.measure("empty database", "-")
        print(f"[{name}] reference batches of {REFERENCE_LINES:,} lines", flush=True)
        add_batches(core, "scale-reference-0", 1, REFERENCE_LINES, priority="background")
        bench.measure(f"ref.: 1 batch x {REFERENCE_LINES:,}", "full", empty)
        one = bench.measure(f"ref.: 1 batch x {REFERENCE_LINES:,}", "free")
        for n in range(1, BACKLOG_PROJECTS + 1):
            add_batches(core, f"scale-reference-{n}", 1, REFERENCE_LINES, priority="background")
        eleven = bench.measure(f"ref.: {BACKLOG_PROJECTS + 1} batches x {REFERENCE_LINES:,}, "
                               f"{BACKLOG_PROJECTS + 1} projects", "free")

        source = root / f"{name}-intake.jsonl"
        size = write_chat_lines(source, lines)
        print(f"[{name}] intake of {lines:,} lines ({size / 1e6:.0f} MB) through broker api", flush=True)
        with broker_api_process(url, str(data_dir), log_path=root / f"{name}-api.log") as (base_url, pid):
            intake = run_intake(base_url, pid, source, lines)
        source.unlink()
        bench.measure(f"+ 1 batch x {lines:,}", "full", empty, at_scale=True)
        bench.measure(f"+ 1 batch x {lines:,}", "free", one, at_scale=True)

        print(f"[{name}] backlog of {BACKLOG_BATCHES} x {BACKLOG_LINES:,} lines", flush=True)
        for n in range(BACKLOG_PROJECTS):
            add_batches(core, f"scale-backlog-{n}", BACKLOG_BATCHES // BACKLOG_PROJECTS, BACKLOG_LINES)
        backlog = f"+ {BACKLOG_BATCHES} batches x {BACKLOG_LINES:,}, {BACKLOG_PROJECTS} projects"
        bench.measure(backlog, "full", empty, at_scale=True)
        bench.measure(backlog, "free", eleven, at_scale=True)
        plans = explain_tick(bench)
        return DatabaseRun(name, intake, bench.results, plans)
    finally:
        core.engine.dispose()


# --- 1 GB in and out ----------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Stream:
    phase: str
    size: int
    seconds: float
    peak_rss_mb: float


def run_big_file(root: Path, size: int, env: dict[str, str] | None = None) -> tuple[float, list[Stream], bool]:
    """Returns the API's RSS at rest, the upload and download figures, and whether the peak could be reset;
    ``env`` adds settings (e.g. BROKER_STORAGE_URL for a bucket)."""
    source = root / "big.jsonl"
    written, digest = write_chat_bytes(source, size)
    env = {"BROKER_MAX_UPLOAD_BYTES": str(max(DEFAULT_MAX_UPLOAD_BYTES, written + (1 << 20))), **(env or {})}
    url = f"sqlite:///{root}/big/broker.db"
    try:
        with broker_api_process(url, str(root / "big"), env=env, log_path=root / "big-api.log") as (base_url, pid), \
                httpx.Client(base_url=base_url + "/", timeout=HTTP_TIMEOUT) as client:
            client.get("files").raise_for_status()  # first request: imports and DB pool warmed, as in service
            at_rest = peak_rss_mb(pid)
            start = time.perf_counter()
            file_id = upload(client, source)
            up = Stream("upload (multipart)", written, time.perf_counter() - start, peak_rss_mb(pid))
            source.unlink()
            reset = reset_peak_rss(pid)
            start, got, check = time.perf_counter(), 0, hashlib.sha256()
            with client.stream("GET", f"files/{file_id}/content") as resp:
                resp.raise_for_status()
                for piece in resp.iter_raw(READ_PIECE_BYTES):
                    got += len(piece)
                    check.update(piece)
            down = Stream("download (content)", got, time.perf_counter() - start, peak_rss_mb(pid))
            assert got == written and check.hexdigest() == digest, "downloaded bytes differ from the upload"
            client.delete(f"files/{file_id}").raise_for_status()
    finally:
        source.unlink(missing_ok=True)
    return at_rest, [up, down], reset


# --- report ---------------------------------------------------------------------------------------------------------

def met(ok: bool) -> str:
    return "yes" if ok else "NO"


def print_intake(runs: list[DatabaseRun], lines: int) -> None:
    rows = []
    for run in runs:
        i = run.intake
        rate = lines / i.total_seconds
        rows.append([run.name, f"{i.file_bytes / 1e6:,.0f} MB", f"{i.upload_seconds:.1f}", f"{i.total_seconds:.1f}",
                     f"{rate:,.0f}", f">= {INTAKE_TARGET_LINES_PER_SECOND:,}",
                     met(rate >= INTAKE_TARGET_LINES_PER_SECOND), f"{i.peak_rss_mb:,.0f}"])
    print_table(f"Intake of one {lines:,}-line chat batch (broker api: upload -> in_progress)",
                ["database", "file", "upload s", "to in_progress s", "lines/s", "target", "met", "API peak RSS MB"],
                rows)


def print_ticks(run: DatabaseRun) -> None:
    rows = []
    for t in run.ticks:
        vs = "" if t.reference is None else f"{t.ratio:.2f}x {'empty' if t.reference.window == '-' else 'ref.'}"
        rows.append([t.scenario, t.window, t.batches, f"{t.open_lines:,}", f"{t.mean_ms:.2f}", f"{t.p95_ms:.2f}", vs,
                     f"<= {TICK_RATIO_TARGET:.0f}x" if t.at_scale else "",
                     met(t.ratio <= TICK_RATIO_TARGET) if t.at_scale else ""])
    print_table(f"Planner tick time, {run.name}: mean/p95 over the ticks; full = window leased (steady state), "
                "free = leases expired before each tick (take back + claim a new window)",
                ["scenario", "window", "batches", "open lines", "mean ms", "p95 ms", "vs reference", "target",
                 "met"], rows)


def print_plans(run: DatabaseRun) -> None:
    rows = []
    for p in run.plans:
        rows.append([p.statement[:70] + ("..." if len(p.statement) > 70 else ""), p.plan,
                     "?" if p.rows_read is None else f"{p.rows_read:,}", "" if p.ms is None else f"{p.ms:.2f}",
                     "FULL PASS" if p.full_pass else "indexed"])
    passes = sum(p.full_pass for p in run.plans)
    rows.append([f"{len(run.plans)} statements on line in one tick", "full passes over line: target 0", "", "",
                 met(passes == 0)])
    what = "EXPLAIN QUERY PLAN" if any(p.rows_read is None for p in run.plans) else "EXPLAIN ANALYZE, rolled back"
    print_table(f"Statements on line in one free-window tick at the largest backlog, {run.name} ({what}; "
                "worst case of each statement)", ["statement", "access to line", "rows read", "ms", "verdict"], rows)


def print_streams(at_rest: float, streams: list[Stream], reset: bool) -> None:
    rows = [[s.phase, f"{s.size / 1e9:.2f} GB", f"{s.seconds:.1f}", f"{s.size / 1e6 / s.seconds:,.0f}",
             f"{s.peak_rss_mb:,.0f}", f"<= {RSS_TARGET_MB:.0f}", met(s.peak_rss_mb <= RSS_TARGET_MB)]
            for s in streams]
    note = "" if reset else " (peak could not be reset: download figure includes the upload)"
    print_table(f"API peak RSS (VmHWM) streaming a big file; {at_rest:,.0f} MB after start-up{note}",
                ["phase", "size", "seconds", "MB/s", "peak RSS MB", "target MB", "met"], rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lines", type=int, default=1_000_000, help="lines in the big batch")
    parser.add_argument("--gigabytes", type=float, default=1.0, help="size of the file streamed in and out (GB)")
    parser.add_argument("--ticks", type=int, default=50, help="planner ticks timed per scenario")
    parser.add_argument("--postgres", nargs="?", const="postgresql://postgres@127.0.0.1:5432/test", default=None,
                        help="also run intake and ticks on PostgreSQL (admin URL; a throwaway database is made)")
    args = parser.parse_args()
    logging.getLogger("broker").setLevel(logging.ERROR)  # "took back N expired leases" is what we do on purpose
    started = time.perf_counter()
    runs: list[DatabaseRun] = []
    with tempfile.TemporaryDirectory(prefix="broker-scale-") as tmp:
        root = Path(tmp)
        runs.append(run_database("SQLite", f"sqlite:///{root}/sqlite/broker.db", root, args.lines, args.ticks))
        if args.postgres:
            with postgres_database(args.postgres) as pg_url:
                runs.append(run_database("PostgreSQL", pg_url, root, args.lines, args.ticks))
        print(f"streaming {args.gigabytes:g} GB in and out of broker api", flush=True)
        at_rest, streams, reset = run_big_file(root, int(args.gigabytes * 1e9))
    print_intake(runs, args.lines)
    for run in runs:
        print_ticks(run)
        print_plans(run)
    print_streams(at_rest, streams, reset)
    print(f"total run time: {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
