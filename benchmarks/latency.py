"""Broker vs bare clients under real latency: how much of a concurrency window becomes finished lines.

The simulator (its own process) answers every chat call after a lognormal latency (median 400 ms, sigma 0, 0.5
and 1.0: LLM output lengths vary a lot), drawn from the line's content: every client meets the same latency for
the same line, so the slowest lines (which decide when a run ends) are the same for all and no run is luckier with
its tail than another. A bare client is what a team writes by hand: a semaphore of ``concurrency``, gather, and
one pooled httpx AsyncClient or one aiohttp ClientSession (the cookbook's choice, and far cheaper in CPU: under
load the httpx client is CPU-starved first, so the aiohttp one is the fair reference). The broker is ``broker
serve`` (embedded: SQLite, in-process queue) with ``max_concurrency = concurrency`` and no rate limit, driven
through the official SDK. Mean calls in flight follow from Little's law (rate x mean latency); CPU per line is the
process' CPU time over the lines.
Run: ``python -m benchmarks.latency [--lines 5000] [--concurrency 64 512] [--sigmas 0 0.5 1.0]``.
"""

import argparse
import asyncio
import math
import sys
import time
from collections.abc import Awaitable, Callable

import aiohttp
import httpx
import openai
import orjson

from benchmarks._common import broker_serve, chat_lines, cpu_seconds, jsonl, print_table, simulator

MEDIAN_MS = 400.0  #: median upstream latency
TARGET_RATIO = 0.95  #: issue "Dispatch core": the broker reaches this share of the bare client's rate
BARE_ATTEMPTS = 3  #: the bare client retries a call whose connection dropped, as a hand-written client would


def set_sigma(sim_url: str, sigma: float) -> None:
    httpx.post(sim_url.removesuffix("/v1") + "/_sim/config",
               json={"latency_median_ms": MEDIAN_MS, "latency_sigma": sigma, "latency_by_input": True},
               ).raise_for_status()


async def _gated(lines: list[dict[str, object]], concurrency: int,
                 one: Callable[[dict[str, object]], Awaitable[int]]) -> tuple[float, float]:
    """Completions/s and CPU ms per line of ``one`` run over ``lines``, ``concurrency`` at a time."""
    gate = asyncio.Semaphore(concurrency)

    async def gated(line: dict[str, object]) -> int:
        async with gate:
            for attempt in range(BARE_ATTEMPTS):  # a keep-alive connection the server just closed: try again
                try:
                    return await one(line)
                except (httpx.TransportError, aiohttp.ClientConnectionError):
                    if attempt == BARE_ATTEMPTS - 1:
                        raise
            raise AssertionError("unreachable")

    cpu, start = time.process_time(), time.perf_counter()
    statuses = await asyncio.gather(*(gated(line) for line in lines))
    elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu
    assert all(s == 200 for s in statuses), "the bare client saw errors"
    return len(lines) / elapsed, 1000 * cpu / len(lines)


async def bare_httpx(base_url: str, lines: list[dict[str, object]], concurrency: int) -> tuple[float, float]:
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=base_url + "/", limits=limits, timeout=120) as client:
        async def one(line: dict[str, object]) -> int:
            resp = await client.post("chat/completions", content=orjson.dumps(line["body"]),
                                     headers={"content-type": "application/json"})
            return resp.status_code
        return await _gated(lines, concurrency, one)


async def bare_aiohttp(base_url: str, lines: list[dict[str, object]], concurrency: int) -> tuple[float, float]:
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency),
                                     timeout=aiohttp.ClientTimeout(total=120)) as session:
        async def one(line: dict[str, object]) -> int:
            async with session.post(base_url + "/chat/completions", data=orjson.dumps(line["body"]),
                                    headers={"content-type": "application/json"}) as resp:
                await resp.read()
                return resp.status
        return await _gated(lines, concurrency, one)


def through_broker(sim_url: str, lines: list[dict[str, object]], concurrency: int) -> tuple[float, float]:
    """Completions/s and CPU ms per line (the whole ``broker serve`` process: API, planner, workers)."""
    providers = f"""
[providers.sim]
base_url = "{sim_url}"
max_concurrency = {concurrency}
timeout_seconds = 120
models = {{ "gpt-4o-mini" = {{ input = 0.15, output = 0.6 }} }}
"""
    with broker_serve(providers, with_pid=True) as (base_url, pid):
        client = openai.OpenAI(base_url=base_url, api_key="unused")
        upload = client.files.create(file=("bench.jsonl", jsonl(lines)), purpose="batch")
        cpu, start = cpu_seconds(pid), time.perf_counter()
        batch = client.batches.create(input_file_id=upload.id, endpoint="/v1/chat/completions",
                                      completion_window="24h")
        while batch.status not in ("completed", "failed", "expired", "cancelled"):
            time.sleep(0.1)
            batch = client.batches.retrieve(batch.id)
        elapsed, cpu = time.perf_counter() - start, cpu_seconds(pid) - cpu
    assert batch.status == "completed" and batch.request_counts and batch.request_counts.completed == len(lines), batch
    return len(lines) / elapsed, 1000 * cpu / len(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--lines", type=int, default=5_000)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[64, 512])
    parser.add_argument("--sigmas", type=float, nargs="+", default=[0.0, 0.5, 1.0])
    args = parser.parse_args()
    lines = chat_lines(args.lines)
    rows = []
    with simulator() as sim_url:
        for concurrency in args.concurrency:
            for sigma in args.sigmas:
                set_sigma(sim_url, sigma)
                mean_latency = MEDIAN_MS / 1000 * math.exp(sigma ** 2 / 2)
                bare, bare_cpu = asyncio.run(bare_httpx(sim_url, lines, concurrency))
                fast, fast_cpu = asyncio.run(bare_aiohttp(sim_url, lines, concurrency))
                broker, broker_cpu = through_broker(sim_url, lines, concurrency)
                print(f"concurrency {concurrency}, sigma {sigma}: bare httpx {bare:,.1f}/s, bare aiohttp "
                      f"{fast:,.1f}/s, broker {broker:,.1f}/s", file=sys.stderr)
                rows.append([concurrency, sigma, f"{concurrency / mean_latency:,.0f}", f"{bare:,.1f}", f"{fast:,.1f}",
                             f"{broker:,.1f}", f"{broker / bare:.2f} / {broker / fast:.2f}", f">= {TARGET_RATIO}",
                             f"{broker * mean_latency:.0f} of {concurrency}",
                             f"{bare_cpu:.2f} / {fast_cpu:.2f} / {broker_cpu:.2f}"])
    print_table(f"{args.lines} chat lines, lognormal latency (median {MEDIAN_MS:.0f} ms), no rate limit: completions/s",
                ["concurrency", "sigma", "ceiling", "bare httpx", "bare aiohttp", "broker",
                 "broker / bare httpx / aiohttp", "target", "broker's mean in flight",
                 "CPU ms/line httpx / aiohttp / broker"], rows)


if __name__ == "__main__":
    main()
