"""Shared limits: how much of an upstream's RPM limit a client uses, and how often it is answered 429.

Each contender runs the same chat lines against a fresh simulator process (``broker simulate --rpm R
--latency-ms 400``: one token bucket of one minute's capacity refilling at R/60 per second, lognormal latency),
so every contender starts with equal buckets. The simulator counts what it answered: utilization is the mean of
its successes per second over the steady part of the run (the run's seconds minus the first and last 10%)
divided by R/60; the 429 share is ``rate_limited / requests``.

Contenders:

* inference-broker, once per ``--max-concurrency`` value (default 128 and 256): ``LocalCluster`` (``broker api``
  + ``broker planner`` + 2 ``broker worker`` processes) on a throwaway PostgreSQL database and a flushed Redis db,
  provider catalogue ``rpm = R``; the lines are submitted as one batch through the official openai SDK.
  Figure: >= 95% of the limit used, <= 1% of calls answered 429.
* cookbook-style client (reference): one asyncio process as OpenAI's cookbook ``api_request_parallel_processor``
  works: request and token buckets refilling at limit/60 per second with one minute's capacity, one send per
  1 ms loop when both have room, a 15 s pause of all sends after a 429, up to 5 attempts, sending through one
  ``aiohttp.ClientSession`` with its default connector, as the cookbook does.
* bespokelabs-curator online mode (second reference, optional): run by ``--curator-python`` (default: this
  interpreter) with ``base_url`` = the simulator and ``max_requests_per_minute = R``; skipped with a note when
  curator is not importable there. It is no dependency of this project, not even an extra: curator pins
  litellm==1.83.7, hence openai==2.30.0, pydantic==2.12.5, click==8.1.8 and rich<14, so give it a venv of its own
  (``python -m venv /tmp/curvenv && /tmp/curvenv/bin/pip install bespokelabs-curator``).

The simulator's bucket starts full (one minute's allowance), as OpenAI's does: on runs much shorter than a minute
or two a client that spends that burst shows more than 100% "utilization"; the defaults make the burst small
against the run.

Run: ``python -m benchmarks.limits [--lines 20000] [--rpm 12000] [--latency-ms 400] [--workers 2]
[--postgres postgresql://postgres@127.0.0.1:5432/test] [--redis redis://127.0.0.1:6379/13]
[--curator-python /tmp/curvenv/bin/python] [--only broker,cookbook,curator]``.
The defaults take about 100 s at the limit per contender (20,000 lines at 12,000 rpm), plus start-up.
Below the table each contender gets diagnostics: calls in flight at the simulator (sampled twice a second), CPU
seconds per process, and for the broker the limiter's Lua calls per upstream call, chunks that failed with an
exception and expired leases the planner took back. ``--worker-threads``, ``--max-concurrency``, ``--broker-env
NAME=VALUE`` and ``--keep-logs DIR`` help to explain a miss.
"""

import argparse
import asyncio
import functools
import json
import math
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import httpx
import openai
import redis

from benchmarks._common import chat_lines, jsonl, postgres_database, print_table, simulator
from cli.local_cluster import LocalCluster

TARGET_UTILIZATION = 0.95  #: issue "Dispatch engine": share of the RPM limit used over the steady part
TARGET_429_SHARE = 0.01  #: ... and at most this share of upstream calls answered 429
STEADY_TRIM = 0.10  #: share of the run's seconds dropped at each end before averaging
MODEL = "gpt-4o-mini"
TERMINAL = ("completed", "failed", "expired", "cancelled")

# the cookbook's constants (openai-cookbook examples/api_request_parallel_processor.py)
COOKBOOK_PAUSE_AFTER_429 = 15.0  #: seconds every send waits after a rate-limit error
COOKBOOK_LOOP_SLEEP = 0.001  #: seconds the main loop sleeps between iterations (one send at most each)
COOKBOOK_MAX_ATTEMPTS = 5
COOKBOOK_DEFAULT_MAX_TOKENS = 15  #: the cookbook's completion estimate when a request sets no max_tokens


@dataclass
class Result:
    """What one contender achieved, as the simulator saw it."""

    name: str
    rpm_limit: int
    steady_per_second: float  #: mean successes per second over the steady part
    window: tuple[int, int]  #: (first, last) Unix second of the steady part
    run_seconds: int  #: seconds between the first and the last success
    requests: int
    rate_limited: int
    successes: int
    wall_seconds: float
    note: str = ""
    upstream_in_flight: float = 0.0  #: mean calls in flight at the simulator over the steady part
    diagnostics: dict[str, str] = field(default_factory=dict)  #: contender-specific findings, printed below

    @property
    def utilization(self) -> float:
        return self.steady_per_second / (self.rpm_limit / 60)

    @property
    def share_429(self) -> float:
        return self.rate_limited / self.requests if self.requests else 0.0

    @property
    def met(self) -> bool:
        return self.utilization >= TARGET_UTILIZATION and self.share_429 <= TARGET_429_SHARE


# --- measuring at the simulator -------------------------------------------------------------------------------------

def sim_admin(sim_url: str) -> str:
    return sim_url.removesuffix("/v1")


def sim_stats(sim_url: str) -> dict[str, Any]:
    resp = httpx.get(f"{sim_admin(sim_url)}/_sim/stats", timeout=10)
    resp.raise_for_status()
    stats: dict[str, Any] = resp.json()
    return stats


def steady_rate(per_second: dict[str, int], trim: float = STEADY_TRIM) -> tuple[float, tuple[int, int], int]:
    """Mean successes per second over the run's seconds without the first and last ``trim`` share.

    Returns (mean, (first, last) second of the window, seconds in the whole run). Seconds with no success
    inside the run count as 0: a dispatch gap is part of what is measured.
    """
    counts = {int(k): v for k, v in per_second.items()}
    if not counts:
        return 0.0, (0, 0), 0
    first, last = min(counts), max(counts)
    seconds = last - first + 1
    cut = math.floor(seconds * trim)
    lo, hi = first + cut, last - cut
    window = [counts.get(s, 0) for s in range(lo, hi + 1)]
    return sum(window) / len(window), (lo, hi), seconds


class InFlightSampler:
    """Polls the simulator's ``in_flight`` twice a second while a contender runs (how full the pipe is)."""

    def __init__(self, sim_url: str, interval: float = 0.5) -> None:
        self.sim_url, self.interval = sim_url, interval
        self.samples: list[tuple[float, int]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        with httpx.Client(timeout=5) as client:
            while not self._stop.wait(self.interval):
                try:
                    in_flight = client.get(f"{sim_admin(self.sim_url)}/_sim/stats").json()["in_flight"]
                except (httpx.HTTPError, ValueError, KeyError):
                    continue
                self.samples.append((time.time(), int(in_flight)))

    def mean(self, window: tuple[int, int]) -> float:
        inside = [n for t, n in self.samples if window[0] <= t < window[1] + 1]
        return sum(inside) / len(inside) if inside else 0.0

    def __enter__(self) -> "InFlightSampler":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def measure(name: str, sim_url: str, rpm: int, wall: float, sampler: InFlightSampler, note: str = "") -> Result:
    stats = sim_stats(sim_url)
    mean, window, seconds = steady_rate(stats["successes_per_second"])
    return Result(name, rpm, mean, window, seconds, stats["requests"], stats["rate_limited"], stats["successes"],
                  wall, note, sampler.mean(window))


def configure_simulator(sim_url: str, latency_sigma: float) -> None:
    resp = httpx.post(f"{sim_admin(sim_url)}/_sim/config", json={"latency_sigma": latency_sigma}, timeout=10)
    resp.raise_for_status()


# --- contender: inference-broker (2 workers, Redis) -----------------------------------------------------------------

def providers_toml(sim_url: str, rpm: int, max_concurrency: int) -> str:
    return (f'[providers.sim]\nbase_url = "{sim_url}"\nmax_concurrency = {max_concurrency}\nrpm = {rpm}\n'
            f'[providers.sim.models]\n"{MODEL}" = {{ input = 0.15, output = 0.6 }}\n')


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a running process (Linux /proc; 0 elsewhere)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def limiter_calls(client: redis.Redis) -> int:
    """EVALSHA calls Redis has served (the shared limiter runs one Lua script per acquire/settle/429)."""
    stats = client.info("commandstats")
    return int(stats.get("cmdstat_evalsha", {}).get("calls", 0))


def cluster_diagnostics(cluster: LocalCluster, sim_calls: int, evalsha: int) -> dict[str, str]:
    """What explains the broker's figure: CPU per role, limiter round trips, failed chunks, reclaimed leases."""
    cpu = {name: cpu_seconds(proc.pid) for name, proc in cluster.procs.items()}
    worker_logs = "".join(cluster.log(name) for name in cluster.procs if name.startswith("worker"))
    failed = worker_logs.count("Failed to process message")
    causes = sorted(set(re.findall(r"^(\w+(?:\.\w+)*(?:Error|Exception)): (.*)$", worker_logs, re.MULTILINE)))
    reclaimed = sum(int(n) for n in re.findall(r"took back (\d+) expired leases", cluster.log("planner")))
    return {
        "CPU s": ", ".join(f"{name} {seconds:.0f}" for name, seconds in cpu.items()),
        "limiter Lua calls per upstream call": f"{evalsha / max(1, sim_calls):.1f} ({evalsha:,} EVALSHA)",
        "chunks failed with an exception": f"{failed}" + (f" ({'; '.join(': '.join(c) for c in causes[:3])})"
                                                           if causes else ""),
        "expired leases taken back by the planner": str(reclaimed),
    }


def run_broker(sim_url: str, lines: list[dict[str, object]], args: argparse.Namespace, concurrency: int) -> Result:
    redis_client = redis.Redis.from_url(args.redis)
    redis_client.flushdb()
    with tempfile.TemporaryDirectory() as tmp, postgres_database(args.postgres) as db_url:
        env = {"BROKER_AUTH_DISABLED": "true", **dict(kv.split("=", 1) for kv in args.broker_env)}
        cluster = LocalCluster(Path(tmp), db_url, args.redis, providers_toml(sim_url, args.rpm, concurrency),
                               workers=args.workers, worker_threads=args.worker_threads, env=env)
        with cluster, InFlightSampler(sim_url) as sampler:
            client = openai.OpenAI(base_url=cluster.base_url, api_key="unused", max_retries=2)
            upload = client.files.create(file=("limits.jsonl", jsonl(lines)), purpose="batch")
            evalsha_before = limiter_calls(redis_client)
            start = time.perf_counter()
            batch = client.batches.create(input_file_id=upload.id, endpoint="/v1/chat/completions",
                                          completion_window="24h")
            while batch.status not in TERMINAL:
                time.sleep(0.25)
                batch = client.batches.retrieve(batch.id)
            wall = time.perf_counter() - start
            evalsha = limiter_calls(redis_client) - evalsha_before
            diagnostics = cluster_diagnostics(cluster, sim_stats(sim_url)["requests"], evalsha)
            if args.keep_logs:
                Path(args.keep_logs).mkdir(parents=True, exist_ok=True)
                for name in cluster.procs:
                    (Path(args.keep_logs) / f"{name}.log").write_text(cluster.log(name))
    redis_client.close()
    counts = batch.request_counts
    done = f"{counts.completed}/{counts.total} completed, {counts.failed} failed" if counts else batch.status
    note = "" if batch.status == "completed" and counts and counts.completed == len(lines) else f"batch {done}"
    result = measure(f"inference-broker ({args.workers} workers, Redis, max_concurrency {concurrency})", sim_url,
                     args.rpm, wall, sampler, note)
    result.diagnostics = diagnostics
    return result


# --- contender: cookbook-style single-process throttled client ------------------------------------------------------

def cookbook_tokens(body: dict[str, Any]) -> int:
    """The cookbook's admission estimate for a chat request (chars/4 instead of tiktoken: TPM is not binding)."""
    messages = body.get("messages") or []
    prompt = sum(4 + sum(math.ceil(len(str(v)) / 4) for v in m.values()) for m in messages) + 2
    return prompt + int(body.get("n", 1)) * int(body.get("max_tokens", COOKBOOK_DEFAULT_MAX_TOKENS))


@dataclass
class CookbookTracker:
    in_progress: int = 0
    succeeded: int = 0
    failed: int = 0
    rate_limit_errors: int = 0
    other_errors: int = 0
    last_rate_limit_error: float = 0.0


@dataclass
class CookbookRequest:
    body: dict[str, Any]
    tokens: int
    attempts_left: int

    async def call(self, session: aiohttp.ClientSession, url: str, retry: asyncio.Queue["CookbookRequest"],
                   tracker: CookbookTracker) -> None:
        error: str | None = None
        try:
            async with session.post(url, json=self.body) as resp:
                payload = await resp.json()
            if "error" in payload:
                error = str(payload["error"].get("message", ""))
                if "rate limit" in error.lower():
                    tracker.last_rate_limit_error = time.time()
                    tracker.rate_limit_errors += 1
                else:
                    tracker.other_errors += 1
        except (aiohttp.ClientError, ValueError) as exc:
            error = repr(exc)
            tracker.other_errors += 1
        if error is None:
            tracker.in_progress -= 1
            tracker.succeeded += 1
        elif self.attempts_left:
            retry.put_nowait(self)
        else:
            tracker.in_progress -= 1
            tracker.failed += 1


async def cookbook_client(base_url: str, bodies: list[dict[str, Any]], rpm: int, tpm: int) -> CookbookTracker:
    """The cookbook's main loop, sending through one ``aiohttp.ClientSession`` as the cookbook does."""
    tracker = CookbookTracker()
    retry: asyncio.Queue[CookbookRequest] = asyncio.Queue()
    pending = iter(bodies)
    more = True
    requests_capacity, tokens_capacity = float(rpm), float(tpm)
    last_update = time.time()
    next_request: CookbookRequest | None = None
    tasks: set[asyncio.Task[None]] = set()
    url = base_url + "/chat/completions"
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60)) as session:
        while True:
            if next_request is None:
                if not retry.empty():
                    next_request = retry.get_nowait()
                elif more:
                    try:
                        body = next(pending)
                        next_request = CookbookRequest(body, cookbook_tokens(body), COOKBOOK_MAX_ATTEMPTS)
                        tracker.in_progress += 1
                    except StopIteration:
                        more = False
            now = time.time()
            elapsed, last_update = now - last_update, now
            requests_capacity = min(requests_capacity + rpm * elapsed / 60, float(rpm))
            tokens_capacity = min(tokens_capacity + tpm * elapsed / 60, float(tpm))
            if next_request and requests_capacity >= 1 and tokens_capacity >= next_request.tokens:
                requests_capacity -= 1
                tokens_capacity -= next_request.tokens
                next_request.attempts_left -= 1
                task = asyncio.create_task(next_request.call(session, url, retry, tracker))
                tasks.add(task)
                task.add_done_callback(tasks.discard)
                next_request = None
            if tracker.in_progress == 0:
                break
            await asyncio.sleep(COOKBOOK_LOOP_SLEEP)
            since_429 = time.time() - tracker.last_rate_limit_error
            if since_429 < COOKBOOK_PAUSE_AFTER_429:
                await asyncio.sleep(COOKBOOK_PAUSE_AFTER_429 - since_429)
    return tracker


def run_cookbook(sim_url: str, lines: list[dict[str, object]], args: argparse.Namespace) -> Result:
    bodies: list[dict[str, Any]] = [dict(line["body"]) for line in lines]  # type: ignore[call-overload]
    with InFlightSampler(sim_url) as sampler:
        start = time.perf_counter()
        cpu_before = time.process_time()
        tracker = asyncio.run(cookbook_client(sim_url, bodies, args.rpm, args.rpm * 1000))
        wall = time.perf_counter() - start
        cpu = time.process_time() - cpu_before
    note = f"{tracker.failed} failed" if tracker.failed else ""
    result = measure("cookbook-style client", sim_url, args.rpm, wall, sampler, note)
    result.diagnostics = {"client CPU s": f"{cpu:.0f} of {wall:.0f} s wall (one process, one core at most)"}
    return result


# --- contender: bespokelabs-curator online mode (optional) ----------------------------------------------------------

CURATOR_SCRIPT = """
import importlib.util, json, os, sys, time
litellm = importlib.util.find_spec("litellm")
if litellm and litellm.origin and "TIKTOKEN_CACHE_DIR" not in os.environ:  # offline: litellm ships cl100k_base
    os.environ["TIKTOKEN_CACHE_DIR"] = os.path.join(os.path.dirname(litellm.origin), "litellm_core_utils", "tokenizers")
try:
    from bespokelabs import curator
except ImportError:
    print(json.dumps({"missing": True}))
    sys.exit(0)
cfg = json.load(sys.stdin)
llm = curator.LLM(model_name=cfg["model"], backend="openai", backend_params={
    "base_url": cfg["base_url"], "api_key": "sk-simulator", "max_requests_per_minute": cfg["rpm"],
    "max_tokens_per_minute": cfg["tpm"], "max_retries": 5, "require_all_responses": False})
start = time.perf_counter()
out = llm(cfg["prompts"])
rows = len(out.dataset if hasattr(out, "dataset") else out)
print(json.dumps({"elapsed": time.perf_counter() - start, "rows": rows}))
"""


def curator_available(python: str) -> bool:
    probe = subprocess.run([python, "-c", "import bespokelabs.curator"], capture_output=True, timeout=120)
    return probe.returncode == 0


def run_curator(sim_url: str, lines: list[dict[str, object]], args: argparse.Namespace) -> Result:
    prompts = [line["body"]["messages"][0]["content"] for line in lines]  # type: ignore[index]
    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "CURATOR_CACHE_DIR": tmp, "TELEMETRY_ENABLED": "false", "CURATOR_VIEWER": "0",
               "CURATOR_DISABLE_RICH_DISPLAY": "1", "HF_DATASETS_CACHE": tmp, "OPENAI_API_KEY": "sk-simulator"}
        cfg = {"model": MODEL, "base_url": sim_url, "rpm": args.rpm, "tpm": args.rpm * 1000, "prompts": prompts}
        with InFlightSampler(sim_url) as sampler:
            start = time.perf_counter()
            done = subprocess.run([args.curator_python, "-c", CURATOR_SCRIPT], input=json.dumps(cfg).encode(),
                                  cwd=tmp, env=env, capture_output=True, timeout=args.curator_timeout)
            wall = time.perf_counter() - start
    note = ""
    if done.returncode != 0:
        note = "curator exited " + str(done.returncode)
        print(done.stderr.decode(errors="replace")[-3000:], file=sys.stderr)
    return measure("bespokelabs-curator (online)", sim_url, args.rpm, wall, sampler, note)


# --- main -----------------------------------------------------------------------------------------------------------

def row(r: Result) -> list[str]:
    note = f" ({r.note})" if r.note else ""
    return [r.name + note, f"{r.rpm_limit:,}", f"{r.steady_per_second * 60:,.0f}", f"{100 * r.utilization:.1f}",
            f"{100 * r.share_429:.2f}", f"{r.wall_seconds:.1f}",
            f">= {100 * TARGET_UTILIZATION:.0f}%, <= {100 * TARGET_429_SHARE:.0f}%", "yes" if r.met else "NO"]


def detail(r: Result) -> str:
    lo, hi = r.window
    return (f"{r.name}: {r.requests:,} upstream calls, {r.successes:,} answered 200, {r.rate_limited:,} answered 429; "
            f"successes span {r.run_seconds} s, steady window {hi - lo + 1} s "
            f"({r.steady_per_second:.1f}/s vs {r.rpm_limit / 60:.1f}/s allowed), "
            f"{r.upstream_in_flight:.0f} calls in flight at the simulator on average"
            + "".join(f"\n  {key}: {value}" for key, value in r.diagnostics.items()))


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lines", type=int, default=20_000)
    parser.add_argument("--rpm", type=int, default=12_000, help="the simulator's real limit, also configured")
    parser.add_argument("--latency-ms", type=float, default=400.0, help="median of the lognormal latency")
    parser.add_argument("--latency-sigma", type=float, default=0.5, help="sigma of the lognormal latency")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--worker-threads", type=int, default=16)
    parser.add_argument("--max-concurrency", default="128,256",
                        help="the provider's max_concurrency; a comma-separated list runs the broker once for each")
    parser.add_argument("--postgres", default=os.environ.get("BROKER_TEST_DATABASE_URL",
                                                             "postgresql://postgres@127.0.0.1:5432/test"))
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/13", help="flushed before the broker run")
    parser.add_argument("--curator-python", default=sys.executable,
                        help="interpreter that has bespokelabs-curator (e.g. a separate venv)")
    parser.add_argument("--curator-timeout", type=float, default=900.0)
    parser.add_argument("--only", default="broker,cookbook,curator", help="comma-separated contenders to run")
    parser.add_argument("--broker-env", action="append", default=[], metavar="NAME=VALUE",
                        help="extra environment for the cluster's processes (e.g. BROKER_LEASE_SECONDS=10)")
    parser.add_argument("--keep-logs", default=None, help="folder to copy the cluster's process logs into")
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    only = set(args.only.split(","))
    lines = chat_lines(args.lines, model=MODEL)
    sim_args = ("--rpm", str(args.rpm), "--latency-ms", str(args.latency_ms))
    results: list[Result] = []
    contenders: list[tuple[str, Callable[[str, list[dict[str, object]], argparse.Namespace], Result]]] = [
        ("broker", functools.partial(run_broker, concurrency=int(c))) for c in args.max_concurrency.split(",")]
    contenders.append(("cookbook", run_cookbook))
    curator_note = ""
    if "curator" in only:
        if curator_available(args.curator_python):
            contenders.append(("curator", run_curator))
        else:
            curator_note = (f"bespokelabs-curator: not installed in {args.curator_python} (it needs a venv of its own: "
                            "pip install bespokelabs-curator there, then pass --curator-python)")
    for key, run in contenders:
        if key not in only:
            continue
        try:
            with simulator(*sim_args) as sim_url:  # fresh per contender: its buckets start full
                configure_simulator(sim_url, args.latency_sigma)
                results.append(run(sim_url, lines, args))
        except Exception:  # one contender failing must not lose the others' figures
            traceback.print_exc()
            continue
        print(detail(results[-1]), flush=True)
    print_table(
        f"{args.lines:,} chat lines, simulator limit {args.rpm:,} rpm, lognormal latency median "
        f"{args.latency_ms:.0f} ms (sigma {args.latency_sigma})",
        ["client", "limit (rpm)", "steady rpm achieved", "utilization %", "429 share %", "wall time s", "target",
         "met"],
        [row(r) for r in results],
    )
    if curator_note:
        print(curator_note)


if __name__ == "__main__":
    main()
