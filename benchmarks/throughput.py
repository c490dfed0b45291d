"""Broker vs bare asyncio clients (httpx and aiohttp) against the zero-latency simulator: completions/s and CPU.

All send the same requests to the same simulator (its own process, so its CPU is nobody's figure) at the same
concurrency. A bare client is what a team writes by hand: one pooled session, a semaphore, gather, one request
per line; its CPU is this process' over the run. The broker is ``broker serve`` (embedded: API, planner and
workers in one process, SQLite, in-process queue) driven through the official SDK; its CPU is that whole
process' (every role, every thread) from the batch's creation to its completion, over the lines.
With ``--before DIR`` a broker from another checkout (an earlier commit's worktree) takes the same lines too, right
before this one, ``--rounds`` times in turn (a before/after in one run on a noisy machine).
Run: ``python benchmarks/throughput.py [--lines 10000] [--concurrency 64] [--endpoints chat embeddings]
[--before ../earlier-checkout] [--rounds 1]``.
"""

import argparse
import asyncio
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import aiohttp
import httpx
import openai
import orjson

from benchmarks._common import (
    ROOT,
    broker_serve,
    chat_lines,
    cpu_seconds,
    embedding_lines,
    jsonl,
    print_table,
    simulator,
)

TARGET_CPU_MS = 0.4  #: issue "Dispatch core": broker CPU per chat line, all roles
ENDPOINTS = {"chat": ("/v1/chat/completions", chat_lines), "embeddings": ("/v1/embeddings", embedding_lines)}

Line = dict[str, object]
Result = tuple[float, float]  #: completions/s, CPU ms per line


async def _timed(lines: list[Line], concurrency: int, one: Callable[[Line], Awaitable[int]]) -> Result:
    gate = asyncio.Semaphore(concurrency)

    async def gated(line: Line) -> int:
        async with gate:
            return await one(line)

    cpu, start = time.process_time(), time.perf_counter()
    statuses = await asyncio.gather(*(gated(line) for line in lines))
    elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu
    assert all(s == 200 for s in statuses), "the bare client saw errors"
    return len(lines) / elapsed, 1000 * cpu / len(lines)


async def bare_httpx(base_url: str, lines: list[Line], concurrency: int) -> Result:
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=base_url, limits=limits, timeout=60) as client:
        async def one(line: Line) -> int:
            resp = await client.post(str(line["url"]), content=orjson.dumps(line["body"]),
                                     headers={"content-type": "application/json"})
            return resp.status_code
        return await _timed(lines, concurrency, one)


async def bare_aiohttp(base_url: str, lines: list[Line], concurrency: int) -> Result:
    async with aiohttp.ClientSession(base_url, connector=aiohttp.TCPConnector(limit=concurrency),
                                     timeout=aiohttp.ClientTimeout(total=60)) as session:
        async def one(line: Line) -> int:
            async with session.post(str(line["url"]), data=orjson.dumps(line["body"]),
                                    headers={"content-type": "application/json"}) as resp:
                await resp.read()
                return resp.status
        return await _timed(lines, concurrency, one)


def through_broker(sim_url: str, lines: list[Line], endpoint: str, concurrency: int, root: Path = ROOT) -> Result:
    providers = f"""
[providers.sim]
base_url = "{sim_url}"
max_concurrency = {concurrency}
models = {{ "gpt-4o-mini" = {{ input = 0.15, output = 0.6 }}, "text-embedding-3-small" = {{ input = 0.02 }} }}
"""
    with broker_serve(providers, with_pid=True, root=root) as (base_url, pid):
        client = openai.OpenAI(base_url=base_url, api_key="unused")
        upload = client.files.create(file=("bench.jsonl", jsonl(lines)), purpose="batch")
        cpu, start = cpu_seconds(pid), time.perf_counter()
        batch = client.batches.create(input_file_id=upload.id, endpoint=endpoint,  # type: ignore[arg-type]
                                      completion_window="24h")
        while batch.status not in ("completed", "failed", "expired", "cancelled"):
            time.sleep(0.1)
            batch = client.batches.retrieve(batch.id)
        elapsed, cpu = time.perf_counter() - start, cpu_seconds(pid) - cpu
    assert batch.status == "completed" and batch.request_counts is not None \
        and batch.request_counts.completed == len(lines), batch
    return len(lines) / elapsed, 1000 * cpu / len(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--lines", type=int, default=10_000)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--endpoints", nargs="+", choices=list(ENDPOINTS), default=list(ENDPOINTS))
    parser.add_argument("--before", type=Path, help="also run the broker of this checkout (an earlier commit's)")
    parser.add_argument("--rounds", type=int, default=1, help="broker runs of each checkout, taken in turn")
    args = parser.parse_args()
    rows = []
    with simulator() as sim_url:
        origin = sim_url.removesuffix("/v1")
        for name in args.endpoints:
            endpoint, make_lines = ENDPOINTS[name]
            lines = make_lines(args.lines)
            results = {"bare asyncio + httpx": asyncio.run(bare_httpx(origin, lines, args.concurrency)),
                       "bare asyncio + aiohttp": asyncio.run(bare_aiohttp(origin, lines, args.concurrency))}
            for n in range(1, args.rounds + 1):
                suffix = f", round {n}" if args.rounds > 1 else ""
                if args.before:
                    results[f"inference-broker before ({args.before.name}{suffix})"] = through_broker(
                        sim_url, lines, endpoint, args.concurrency, args.before.resolve())
                results[f"inference-broker (serve, SQLite{suffix})"] = through_broker(sim_url, lines, endpoint,
                                                                                     args.concurrency)
            aiohttp_rate = results["bare asyncio + aiohttp"][0]
            for client, (rate, cpu_ms) in results.items():
                broker = client.startswith("inference-broker")
                target = f"<= {TARGET_CPU_MS}" if broker and name == "chat" else ""
                rows.append([name, client, f"{rate:,.0f}", f"{rate / aiohttp_rate:.2f}", f"{cpu_ms:.3f}", target])
    print_table(f"{args.lines} lines per endpoint, zero-latency simulator, concurrency {args.concurrency}",
                ["lines", "client", "completions/s", "vs aiohttp", "CPU ms/line", "target"], rows)


if __name__ == "__main__":
    main()
