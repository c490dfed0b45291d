"""Gateway overhead: the same client straight to the zero-latency simulator vs through the broker's
``/v1/chat/completions``.

Added latency is the broker's p50 / p99 minus the direct p50 / p99 at a fixed open-loop rate (requests sent on a
clock, not after the previous answer); the highest sustained rate is a closed loop at fixed concurrency. The
simulator and ``broker serve --no-auth`` (embedded: SQLite) run in their own processes; the client is one pooled
``aiohttp.ClientSession`` (an ``httpx.AsyncClient`` with 32 connections managed 10 requests/s against the simulator
where aiohttp made 10,000: it measured itself, not the broker). With ``--before DIR`` a broker from another checkout
takes the same load too, window for window in turn with this one (a before/after in one run on a noisy machine;
``--rounds`` windows each). A bare Python proxy (benchmarks/bare_proxy.py: the same uvicorn as the broker's API and
one aiohttp session, no rules) takes it too: the most any gateway written in Python could do here. Run:
``python -m benchmarks.gateway [--seconds 10] [--rates 100,400] [--concurrency 32] [--rounds 1]
[--before ../earlier-checkout]``.
"""

import argparse
import asyncio
import contextlib
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import orjson

from benchmarks._common import ROOT, broker_serve, cpu_seconds, free_port, print_table, simulator, wait_http

TARGET_ADDED_P50_MS, TARGET_ADDED_P99_MS = 1.0, 5.0  #: issue #14, at 100 requests/s
TARGET_RATIO = 0.7  #: sustained rate through the broker vs direct
BODY = orjson.dumps({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Say hello."}]})
HEADERS = {"content-type": "application/json", "authorization": "Bearer unused"}
BARE = "bare Python proxy"  #: benchmarks/bare_proxy.py: uvicorn + aiohttp and nothing else, the ceiling of Python


def _client(concurrency: int) -> aiohttp.ClientSession:
    return aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency),
                                 timeout=aiohttp.ClientTimeout(total=30))


async def _one(client: aiohttp.ClientSession, base_url: str) -> float | None:
    """The call's latency; None when it failed."""
    start = time.perf_counter()
    try:
        async with client.post(base_url + "/chat/completions", data=BODY, headers=HEADERS) as resp:
            await resp.read()
            ok = resp.status == 200
    except (aiohttp.ClientError, TimeoutError):
        return None
    return time.perf_counter() - start if ok else None


async def open_loop(base_url: str, rate: float, seconds: float) -> tuple[list[float], float, int]:
    """Latencies of requests sent every 1/rate s for ``seconds``, the rate actually sent, and failed calls."""
    async with _client(256) as client:
        for _ in range(20):  # warm the pool and the broker's first-call paths
            await _one(client, base_url)
        tasks = []
        start = time.perf_counter()
        n = int(rate * seconds)
        for i in range(n):
            delay = start + i / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.ensure_future(_one(client, base_url)))
        sent = n / (time.perf_counter() - start)
        latencies = await asyncio.gather(*tasks)
        return [x for x in latencies if x is not None], sent, sum(x is None for x in latencies)


async def closed_loop(base_url: str, concurrency: int, seconds: float) -> float:
    """Requests per second at ``concurrency`` requests in flight."""
    async with _client(concurrency) as client:
        await asyncio.gather(*(_one(client, base_url) for _ in range(concurrency)))  # open every connection first
        done = 0
        stop = time.perf_counter() + seconds

        async def worker() -> None:
            nonlocal done
            while time.perf_counter() < stop:
                ok = await _one(client, base_url) is not None  # awaited first: ``done += await …`` reads done
                done += ok  # before the await, so 32 workers' increments overwrote each other (1/32 counted)

        start = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return done / (time.perf_counter() - start)


@contextlib.contextmanager
def bare_proxy(upstream: str) -> Iterator[tuple[str, int]]:
    """benchmarks/bare_proxy.py in its own process in front of ``upstream``; yields its base URL and process id."""
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "benchmarks.bare_proxy", "--port", str(port), "--upstream",
                             upstream], cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_http(f"http://127.0.0.1:{port}/healthz")
        yield f"http://127.0.0.1:{port}/v1", proc.pid
    finally:
        proc.terminate()
        proc.wait(10)


def pct(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100)[int(q * 100) - 1] * 1000


@dataclass
class Target:
    """One server the load goes to: the simulator itself, or a broker in front of it (its process id for CPU)."""

    name: str
    url: str
    pid: int | None = None
    latencies: dict[float, list[float]] = field(default_factory=dict)
    failed: dict[float, int] = field(default_factory=dict)
    cpu_ms: dict[float, float] = field(default_factory=dict)  #: broker CPU per call at each rate
    sustained: float = 0.0


def _window(target: Target, rate: float, seconds: float) -> float:
    """One open-loop window at ``rate``; returns the rate actually sent."""
    cpu0 = cpu_seconds(target.pid) if target.pid else 0.0
    latencies, sent, failed = asyncio.run(open_loop(target.url, rate, seconds))
    target.latencies.setdefault(rate, []).extend(latencies)
    target.failed[rate] = target.failed.get(rate, 0) + failed
    if target.pid and latencies:
        spent = (cpu_seconds(target.pid) - cpu0) * 1000 / len(latencies)
        target.cpu_ms[rate] = (target.cpu_ms.get(rate, spent) + spent) / 2
    return sent


def _rows(targets: list[Target], rates: list[float], concurrency: int) -> list[list[str]]:
    direct, rows = targets[0], []
    for rate in rates:
        d50, d99 = pct(direct.latencies[rate], 0.5), pct(direct.latencies[rate], 0.99)
        target = f"<= {TARGET_ADDED_P50_MS:g} / <= {TARGET_ADDED_P99_MS:g} ms" if rate == 100 else ""
        rows.append([f"{rate:g} req/s", "direct", f"{d50:.2f} / {d99:.2f}", "", "", f"{direct.failed[rate]}", ""])
        for t in targets[1:]:
            b50, b99 = pct(t.latencies[rate], 0.5), pct(t.latencies[rate], 0.99)
            rows.append(["", t.name, f"{b50:.2f} / {b99:.2f}", f"{b50 - d50:.2f} / {b99 - d99:.2f}",
                         f"{t.cpu_ms.get(rate, 0):.2f}", f"{t.failed[rate]}", "" if t.name == BARE else target])
    rows.append([f"sustained, {concurrency} in flight", "direct", f"{direct.sustained:,.0f} req/s", "", "", "", ""])
    bare = next(t for t in targets if t.name == BARE)
    for t in targets[1:]:
        versus = f"{t.sustained / direct.sustained:.2f}x direct"
        if t is not bare:
            versus += f", {t.sustained / bare.sustained:.2f}x {BARE}"
        target = "" if t is bare else f">= {TARGET_RATIO}x"
        rows.append(["", t.name, f"{t.sustained:,.0f} req/s", versus, "", "", target])
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=10.0, help="per window")
    parser.add_argument("--rates", default="100,400")
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=1, help="windows per rate and target, taken in turn")
    parser.add_argument("--before", type=Path, help="also run a broker from this checkout (e.g. an earlier commit's "
                        "`git worktree`), its windows taken in turn with this one's")
    args = parser.parse_args()
    rates = [float(r) for r in args.rates.split(",")]
    with simulator() as sim_url, contextlib.ExitStack() as stack:
        providers = f"""
[providers.sim]
base_url = "{sim_url}"
max_concurrency = 512
models = {{ "gpt-4o-mini" = {{ input = 0.15, output = 0.6 }} }}
"""
        targets = [Target("direct", sim_url), Target(BARE, *stack.enter_context(bare_proxy(sim_url)))]
        for name, root in ([("before", args.before)] if args.before else []) + [("broker", ROOT)]:
            url, pid = stack.enter_context(broker_serve(providers, with_pid=True, root=root))
            targets.append(Target(name, url, pid))
        sent = {}
        for rate in rates:
            for _ in range(args.rounds):
                for target in targets:
                    sent[rate] = _window(target, rate, args.seconds)
        for _ in range(args.rounds):
            for target in targets:
                rate = asyncio.run(closed_loop(target.url, args.concurrency, args.seconds))
                target.sustained += rate / args.rounds
    print_table(f"Gateway overhead: /v1/chat/completions, zero-latency simulator ({args.rounds} x {args.seconds:g} s "
                f"per rate and target; last window sent {', '.join(f'{v:,.0f}/s' for v in sent.values())}; "
                f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores)",
                ["load", "through", "p50 / p99 ms", "added p50 / p99 ms", "broker CPU per call ms", "failed", "target"],
                _rows(targets, rates, args.concurrency))


if __name__ == "__main__":
    main()
