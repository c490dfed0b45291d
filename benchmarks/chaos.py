"""Chaos: how a batch run on the production shape heals from crashes, against the same run undisturbed.

Issue "Dispatch core", item "Recovery". Each scenario runs one ``--lines``-line chat batch on a fresh
``LocalCluster`` (``broker api`` + ``broker planner`` + 2 ``broker worker`` processes, product defaults for leases,
claims and ticks) on a throwaway PostgreSQL database and a private ``redis-server`` (a free loopback port, no
persistence, so the shared Redis is never disturbed), against ``broker simulate`` with lognormal latency:

* undisturbed: the reference time;
* worker killed 5x: at 1/6 ... 5/6 of the lines done, SIGKILL the busiest worker and start it again at once;
* Redis restarted: at 1/3 done, SIGKILL redis-server, wait ``--redis-down`` seconds, start an empty one;
* planner killed mid-finalize: SIGKILL the planner the moment the batch is ``finalizing``, start another;
* API killed mid-validation: SIGKILL the API as soon as it has answered the create (it validates in the background),
  start another.

Per scenario: time from create to ``completed`` and its ratio to undisturbed; lines lost (not in the output file);
duplicated results (a custom_id twice in the output); upstream calls repeated, by cause, line by line from the
simulator's count of requests and answers per body and the line's leases (``attempts``) in SQL:

* cut mid-call: a call that got no answer (its worker died during it) and ran again under a new lease;
* answered but not stored: the upstream answered (and bills) the call, but its worker died before the answer was
  persisted, so it ran again under a new lease;
* lease moved on: calls beyond the leases the line was given, i.e. a call made by a holder whose lease had
  already gone to another or ended (a message run after its lease, say): never allowed (issue "Dispatch core": a
  line whose lease has moved on is never sent upstream again);

lines a killed worker held (leased just before the kill and leased again after it); longest stall: the longest time
in which the batch neither changed status nor ended a line (sampled every 50 ms from SQL). Targets: 0 lost,
0 duplicated, 0 calls after a lease moved on, stall <= 15 s.

Run: ``python -m benchmarks.chaos [--lines 5000] [--latency-ms 400] [--sigma 0.5] [--concurrency 64]
[--postgres URL (default $BROKER_TEST_DATABASE_URL or postgresql://postgres@127.0.0.1:5432/test)]
[--only undisturbed,workers,redis,planner,api] [--keep-logs DIR]``; about 5 minutes with the defaults. The simulator
runs in this process (its per-body counts are read directly).
"""

import argparse
import json
import os
import shutil
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import openai
import psycopg

from benchmarks._common import chat_lines, jsonl, postgres_database, print_table
from cli.local_cluster import LocalCluster, LocalRedis
from simulator import SimulatorConfig, SimulatorServer
from simulator.stats import SimulatorStats, body_digest

DEFAULT_POSTGRES = os.environ.get("BROKER_TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test")
TARGET_STALL_SECONDS = 15.0  #: issue "Dispatch core": the longest a crash may hold a batch still
WORKER_KILLS = 5
TERMINAL = ("completed", "failed", "expired", "cancelled")


@dataclass
class Outcome:
    scenario: str
    seconds: float
    lost: int
    duplicated: int
    repeats: "Repeats"  #: upstream calls that repeated an earlier call's request, by cause
    dead_held: int  #: lines a killed worker held (their calls were cut, or their answers died unstored)
    longest_stall: float
    note: str = ""


@dataclass
class Repeats:
    """Upstream calls that repeated an earlier call of the same line, by cause."""

    cut: int = 0  #: the earlier call got no answer (cut mid-call)
    unstored: int = 0  #: the earlier call was answered, but its answer died with its worker before being stored
    moved_on: int = 0  #: calls beyond the leases the line was given: sent although its lease had moved on

    @property
    def total(self) -> int:
        return self.cut + self.unstored + self.moved_on


def count_repeats(stats: SimulatorStats, lines: list[tuple[str, int]]) -> Repeats:
    """Classify repeated calls line by line: ``lines`` are ``(body, attempts)`` from SQL (each lease adds an
    attempt; a lease is good for one call), the simulator counts requests and 200 answers per body."""
    repeats = Repeats()
    for body, attempts in lines:
        digest = body_digest(body.encode())
        calls, answers = stats.calls_per_body.get(digest, 0), stats.answers_per_body.get(digest, 0)
        moved_on = max(0, calls - attempts)
        again = max(0, calls - 1) - moved_on
        cut = min(again, calls - answers)
        repeats.moved_on += moved_on
        repeats.cut += cut
        repeats.unstored += again - cut
    return repeats


class Watch:
    """Samples the batch's status and lines ended from SQL every 50 ms, in a thread: longest time without change."""

    def __init__(self, database_url: str, batch_id: str) -> None:
        self.database_url, self.batch_id = database_url, batch_id
        self.status, self.done, self.longest, self.ended_at = "validating", 0, 0.0, 0.0
        self.started = time.monotonic()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        last, since = ("", -1), time.monotonic()
        with psycopg.connect(self.database_url, autocommit=True) as conn:
            while True:
                row = conn.execute("SELECT status, completed + failed FROM batch WHERE id = %s",
                                   (self.batch_id,)).fetchone()
                assert row is not None
                self.status, self.done = str(row[0]), int(row[1])
                now = time.monotonic()
                if (self.status, self.done) != last:
                    last, since = (self.status, self.done), now
                self.longest = max(self.longest, now - since)
                if self.status in TERMINAL:
                    self.ended_at = now
                    return
                time.sleep(0.05)

    def wait(self, until: Callable[["Watch"], bool], timeout: float = 600) -> None:
        deadline = time.monotonic() + timeout
        while not until(self):
            if time.monotonic() > deadline or not self._thread.is_alive() and not until(self):
                raise RuntimeError(f"batch {self.batch_id} stuck at {self.status}, {self.done} lines ended")
            time.sleep(0.02)


def run(scenario: str, args: argparse.Namespace, logs: Path | None) -> Outcome:
    with postgres_database(args.postgres) as db, tempfile.TemporaryDirectory() as tmp, \
            LocalRedis(Path(tmp) / "redis") as redis, \
            SimulatorServer(SimulatorConfig(latency_median_ms=args.latency_ms, latency_sigma=args.sigma)) as sim:
        providers = (f'[providers.sim]\nbase_url = "{sim.base_url}"\nmax_concurrency = {args.concurrency}\n'
                     '[providers.sim.models]\n"gpt-4o-mini" = { input = 0.15, output = 0.6 }\n')
        cluster = LocalCluster(Path(tmp) / "cluster", db, redis.url, providers, workers=2, worker_threads=8)
        try:
            with cluster:
                return _disturb(scenario, cluster, redis, db, sim, args)
        finally:
            if logs is not None:
                shutil.copytree(Path(tmp) / "cluster", logs / scenario.split()[0], dirs_exist_ok=True,
                                ignore=shutil.ignore_patterns("data"))


def _disturb(scenario: str, cluster: LocalCluster, redis: LocalRedis, db: str, sim: SimulatorServer,
             args: argparse.Namespace) -> Outcome:
    key = cluster.run("keys", "create", "--project", "chaos").splitlines()[-1]
    client = openai.OpenAI(base_url=cluster.base_url, api_key=key, max_retries=10)
    n, note = args.lines, ""
    held: list[dict[int, int]] = []  #: per worker kill, the leased lines (id -> attempts) just after it
    upload = client.files.create(file=("chaos.jsonl", jsonl(chat_lines(n))), purpose="batch")
    batch = client.batches.create(input_file_id=upload.id, endpoint="/v1/chat/completions",
                                  completion_window="24h")
    if scenario == "api":
        with psycopg.connect(db, autocommit=True) as conn:
            query = "SELECT status, claimed_until FROM batch WHERE id = %s"
            while (row := conn.execute(query, (batch.id,)).fetchone()) and row[0] == "validating" and row[1] is None:
                time.sleep(0.002)  # until the API has claimed the validation
            cluster.kill("api")
            row = conn.execute(query, (batch.id,)).fetchone()
        note = "killed while validating" if row and row[0] == "validating" else "validation had ended: no test"
        cluster.restart("api")
    watch = Watch(db, batch.id)
    if scenario == "workers":
        for k in range(1, WORKER_KILLS + 1):
            watch.wait(lambda w, k=k: w.done >= n * k // (WORKER_KILLS + 1))
            victim, _ = cluster.busiest_worker()
            cluster.kill(victim)
            with psycopg.connect(db) as conn:  # the dead worker's lines stay leased as they were until their lease ends
                held.append(dict(conn.execute("SELECT id, attempts FROM line WHERE batch_id = %s AND status = "
                                              "'queued'", (batch.id,)).fetchall()))
            cluster.restart(victim)  # a supervisor's restart
    elif scenario == "redis":
        watch.wait(lambda w: w.done >= n // 3)
        redis.restart(down_seconds=args.redis_down)
    elif scenario == "planner":
        watch.wait(lambda w: w.status != "in_progress" and w.status != "validating")
        killed_in = watch.status
        cluster.kill("planner")
        with psycopg.connect(db) as conn:
            row = conn.execute("SELECT status FROM batch WHERE id = %s", (batch.id,)).fetchone()
        note = "killed while finalizing" if row and row[0] == "finalizing" else f"seen {killed_in}: no test"
        cluster.restart("planner")
    watch.wait(lambda w: w.status in TERMINAL)
    seconds = watch.ended_at - watch.started
    cluster.wait_healthy()
    done = client.batches.retrieve(batch.id)
    ids: list[str] = []
    if done.output_file_id:
        content = client.files.content(done.output_file_id).text
        ids = [json.loads(line)["custom_id"] for line in content.splitlines() if line.strip()]
    time.sleep(2)  # late duplicates (a message redelivered after its lease moved on) would arrive now
    with psycopg.connect(db) as conn:
        final = conn.execute("SELECT id, body, attempts FROM line WHERE batch_id = %s", (batch.id,)).fetchall()
    # a line the killed worker held was leased again after the kill; one the other worker held ended as it was
    attempts = {line_id: tries for line_id, _, tries in final}
    dead_held = sum(attempts[line] > tries for snapshot in held for line, tries in snapshot.items())
    repeats = count_repeats(sim.stats, [(body, tries) for _, body, tries in final])
    return Outcome(scenario, seconds, n - len(set(ids)), len(ids) - len(set(ids)), repeats, dead_held,
                   watch.longest, note or done.status)


SCENARIOS = {"undisturbed": "undisturbed", "workers": f"worker killed {WORKER_KILLS}x",
             "redis": "Redis restarted", "planner": "planner killed mid-finalize",
             "api": "API killed mid-validation"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lines", type=int, default=5000)
    parser.add_argument("--latency-ms", type=float, default=400.0)
    parser.add_argument("--sigma", type=float, default=0.5)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--redis-down", type=float, default=5.0, help="seconds Redis stays down")
    parser.add_argument("--postgres", default=DEFAULT_POSTGRES)
    parser.add_argument("--only", default=",".join(SCENARIOS))
    parser.add_argument("--keep-logs", type=Path)
    args = parser.parse_args()
    results = [run(name, args, args.keep_logs) for name in args.only.split(",")]
    base = next((r.seconds for r in results if r.scenario == "undisturbed"), None)
    rows = [(SCENARIOS[r.scenario], f"{r.seconds:.1f}", f"{r.seconds / base:.2f}x" if base else "-", r.lost,
             r.duplicated, r.repeats.cut, r.repeats.unstored, r.repeats.moved_on, r.dead_held,
             f"{r.longest_stall:.1f}", "yes" if r.lost == r.duplicated == r.repeats.moved_on == 0
             and r.longest_stall <= TARGET_STALL_SECONDS else "NO", r.note) for r in results]
    print_table(f"Chaos: {args.lines:,} lines, 2 workers, max_concurrency {args.concurrency}, latency "
                f"{args.latency_ms:.0f} ms (sigma {args.sigma}), PostgreSQL + Redis",
                ["scenario", "time s", "vs undisturbed", "lines lost (0)", "duplicated results (0)",
                 "calls repeated: cut mid-call", "answered, not stored", "lease moved on (0)",
                 "lines a killed worker held", "longest stall s (<= 15)", "targets met", "note"], rows)


if __name__ == "__main__":
    main()
