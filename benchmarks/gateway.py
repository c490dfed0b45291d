"""Gateway overhead: the same client straight to the zero-latency simulator vs through the broker's
``/v1/chat/completions``.

Added latency is the broker's p50 / p99 minus the direct p50 / p99 at a fixed open-loop rate (requests sent on a
clock, not after the previous answer); the highest sustained rate is a closed loop at fixed concurrency. The
simulator and ``broker serve --no-auth`` (embedded: SQLite) run in their own processes; the client is one pooled
``httpx.AsyncClient``. Run: ``python -m benchmarks.gateway [--seconds 10] [--rates 100,400] [--concurrency 32]``.
"""

import argparse
import asyncio
import os
import statistics
import time
from pathlib import Path

import httpx
import orjson

from benchmarks._common import broker_serve, print_table, simulator

TARGET_ADDED_P50_MS, TARGET_ADDED_P99_MS = 1.0, 5.0  #: issue #14, at 100 requests/s
TARGET_RATIO = 0.7  #: sustained rate through the broker vs direct
BODY = orjson.dumps({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Say hello."}]})
HEADERS = {"content-type": "application/json", "authorization": "Bearer unused"}


def _client(base_url: str, concurrency: int) -> httpx.AsyncClient:
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    return httpx.AsyncClient(base_url=base_url + "/", limits=limits, timeout=30)


async def _one(client: httpx.AsyncClient) -> float | None:
    """The call's latency; None when it failed."""
    start = time.perf_counter()
    try:
        resp = await client.post("chat/completions", content=BODY, headers=HEADERS)
    except httpx.HTTPError:
        return None
    return time.perf_counter() - start if resp.status_code == 200 else None


async def open_loop(base_url: str, rate: float, seconds: float) -> tuple[list[float], float, int]:
    """Latencies of requests sent every 1/rate s for ``seconds``, the rate actually sent, and failed calls."""
    async with _client(base_url, 256) as client:
        for _ in range(20):  # warm the pool and the broker's first-call paths
            await _one(client)
        tasks = []
        start = time.perf_counter()
        n = int(rate * seconds)
        for i in range(n):
            delay = start + i / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.ensure_future(_one(client)))
        sent = n / (time.perf_counter() - start)
        latencies = await asyncio.gather(*tasks)
        return [x for x in latencies if x is not None], sent, sum(x is None for x in latencies)


async def closed_loop(base_url: str, concurrency: int, seconds: float) -> float:
    """Requests per second at ``concurrency`` requests in flight."""
    async with _client(base_url, concurrency) as client:
        done = 0
        stop = time.perf_counter() + seconds

        async def worker() -> None:
            nonlocal done
            while time.perf_counter() < stop:
                done += await _one(client) is not None

        start = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return done / (time.perf_counter() - start)


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def pct(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100)[int(q * 100) - 1] * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--rates", default="100,400")
    parser.add_argument("--concurrency", type=int, default=32)
    args = parser.parse_args()
    rates = [float(r) for r in args.rates.split(",")]
    rows = []
    with simulator() as sim_url:
        providers = f"""
[providers.sim]
base_url = "{sim_url}"
max_concurrency = 512
models = {{ "gpt-4o-mini" = {{ input = 0.15, output = 0.6 }} }}
"""
        with broker_serve(providers, with_pid=True) as (broker_url, pid):
            for rate in rates:
                direct, _, direct_failed = asyncio.run(open_loop(sim_url, rate, args.seconds))
                brokered, achieved, failed = asyncio.run(open_loop(broker_url, rate, args.seconds))
                p50 = pct(brokered, 0.5) - pct(direct, 0.5)
                p99 = pct(brokered, 0.99) - pct(direct, 0.99)
                target = (f"<= {TARGET_ADDED_P50_MS:g} / <= {TARGET_ADDED_P99_MS:g} ms" if rate == 100 else "")
                rows.append([f"{rate:g} req/s (sent {achieved:,.0f}/s; failed {direct_failed} / {failed})",
                             f"{pct(direct, 0.5):.2f} / "
                             f"{pct(direct, 0.99):.2f}", f"{pct(brokered, 0.5):.2f} / {pct(brokered, 0.99):.2f}",
                             f"{p50:.2f} / {p99:.2f}", target])
            direct_rate = asyncio.run(closed_loop(sim_url, args.concurrency, args.seconds))
            cpu0 = cpu_seconds(pid)
            broker_rate = asyncio.run(closed_loop(broker_url, args.concurrency, args.seconds))
            cpu_ms = (cpu_seconds(pid) - cpu0) / (broker_rate * args.seconds) * 1000
    rows.append([f"sustained, concurrency {args.concurrency}", f"{direct_rate:,.0f} req/s",
                 f"{broker_rate:,.0f} req/s", f"{broker_rate / direct_rate:.2f}x direct", f">= {TARGET_RATIO}x"])
    rows.append(["broker CPU per call (all its threads)", "", f"{cpu_ms:.2f} ms", "", ""])
    print_table("Gateway overhead: /v1/chat/completions, zero-latency simulator",
                ["load", "direct p50 / p99 ms", "broker p50 / p99 ms", "added p50 / p99 ms", "target"], rows)


if __name__ == "__main__":
    main()
