"""Broker vs a bare asyncio + httpx client: chat completions per second against the zero-latency simulator.

Both send the same requests to the same simulator (its own process) at the same concurrency. The broker is
``broker serve`` (embedded: SQLite, in-process queue) in its own process, driven through the official SDK.
Run: ``python benchmarks/throughput.py [--lines 20000] [--concurrency 64]``.
"""

import argparse
import asyncio
import time

import httpx
import openai
import orjson

from benchmarks._common import broker_serve, chat_lines, jsonl, print_table, simulator

TARGET_RATIO = 0.7  #: issue #2: the broker reaches at least this share of the bare client's rate


async def bare_client(base_url: str, lines: list[dict[str, object]], concurrency: int) -> float:
    """What a team writes by hand: one pooled AsyncClient, a semaphore, gather. Returns completions/s."""
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    gate = asyncio.Semaphore(concurrency)
    async with httpx.AsyncClient(base_url=base_url + "/", limits=limits, timeout=60) as client:
        async def one(line: dict[str, object]) -> int:
            async with gate:
                resp = await client.post("chat/completions", content=orjson.dumps(line["body"]),
                                         headers={"content-type": "application/json"})
                return resp.status_code
        start = time.perf_counter()
        statuses = await asyncio.gather(*(one(line) for line in lines))
        elapsed = time.perf_counter() - start
    assert all(s == 200 for s in statuses), "the bare client saw errors"
    return len(lines) / elapsed


def through_broker(sim_url: str, lines: list[dict[str, object]], concurrency: int) -> float:
    providers = f"""
[providers.sim]
base_url = "{sim_url}"
max_concurrency = {concurrency}
models = {{ "gpt-4o-mini" = {{ input = 0.15, output = 0.6 }} }}
"""
    with broker_serve(providers) as base_url:
        client = openai.OpenAI(base_url=base_url, api_key="unused")
        upload = client.files.create(file=("bench.jsonl", jsonl(lines)), purpose="batch")
        start = time.perf_counter()
        batch = client.batches.create(input_file_id=upload.id, endpoint="/v1/chat/completions",
                                      completion_window="24h")
        while batch.status not in ("completed", "failed", "expired", "cancelled"):
            time.sleep(0.1)
            batch = client.batches.retrieve(batch.id)
        elapsed = time.perf_counter() - start
    assert batch.status == "completed" and batch.request_counts.completed == len(lines), batch
    return len(lines) / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--lines", type=int, default=20_000)
    parser.add_argument("--concurrency", type=int, default=64)
    args = parser.parse_args()
    lines = chat_lines(args.lines)
    with simulator() as sim_url:
        bare = asyncio.run(bare_client(sim_url, lines, args.concurrency))
        broker = through_broker(sim_url, lines, args.concurrency)
    ratio = broker / bare
    print_table(
        f"{args.lines} chat lines, zero-latency simulator, concurrency {args.concurrency}",
        ["client", "completions/s", "ratio", "target"],
        [["bare asyncio + httpx", f"{bare:,.0f}", "1.00", ""],
         ["inference-broker (serve, SQLite)", f"{broker:,.0f}", f"{ratio:.2f}", f">= {TARGET_RATIO}"]],
    )


if __name__ == "__main__":
    main()
