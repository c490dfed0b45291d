"""Interactive calls beside a saturating batch on one provider: does the interactive client notice the batch, and
does the batch still get the rest of the provider's limit?

A simulator with an RPM limit and lognormal latency (``broker simulate --rpm R --latency-ms M``, its own process)
behind ``broker serve --no-auth`` (embedded, its own process) whose catalogue gives the provider the same ``rpm``.
First an interactive client alone sends chat completions at a fixed rate (open loop) for ``--seconds``: its idle
p95. Then a batch of ``--lines`` chat lines is submitted; once it runs at the limit the same client runs again for
``--seconds``. Over that window: the interactive p95 against the idle one, interactive calls answered 429, the
provider's limit used (the simulator's successes per second over R/60) and the batch's share of what the
interactive calls left (batch lines completed per second over R/60 minus the interactive rate).
With ``--postgres URL`` the broker is the production shape instead (``LocalCluster``: API, planner and two
workers as processes on a throwaway PostgreSQL database and a flushed Redis db).
Run: ``python -m benchmarks.mixed [--lines 100000] [--rpm 12000] [--latency-ms 400] [--rate 20] [--seconds 30]
[--postgres postgresql://postgres@127.0.0.1:5432/test] [--redis redis://127.0.0.1:6379/13]``.
"""

import argparse
import asyncio
import statistics
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import openai
import orjson
import redis

from benchmarks._common import broker_serve, chat_lines, jsonl, postgres_database, print_table, simulator
from cli.local_cluster import LocalCluster

TARGET_P95_RATIO = 1.2  #: interactive p95 beside the batch, over its p95 on an idle broker
TARGET_USED = 0.95  #: share of the provider's limit used
TARGET_BATCH_SHARE = 0.90  #: share of what interactive calls leave that the batch gets
WARMUP_SECONDS = 8.0  #: after the batch starts, before the measured window
BODY = orjson.dumps({"model": "gpt-4o-mini", "max_tokens": 16,
                     "messages": [{"role": "user", "content": "An interactive question."}]})


async def interactive(base_url: str, rate: float, seconds: float) -> tuple[list[float], int, int]:
    """Latencies of the successful calls, calls answered 429, other failures."""
    limits = httpx.Limits(max_connections=256, max_keepalive_connections=256)
    async with httpx.AsyncClient(base_url=base_url + "/", limits=limits, timeout=60) as client:
        async def one() -> tuple[int, float]:
            start = time.perf_counter()
            resp = await client.post("chat/completions", content=BODY,
                                     headers={"content-type": "application/json", "authorization": "Bearer x"})
            return resp.status_code, time.perf_counter() - start

        tasks, start = [], time.perf_counter()
        for i in range(int(rate * seconds)):
            if (delay := start + i / rate - time.perf_counter()) > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.ensure_future(one()))
        results = await asyncio.gather(*tasks)
    ok = [latency for status, latency in results if status == 200]
    return ok, sum(status == 429 for status, _ in results), sum(status not in (200, 429) for status, _ in results)


@contextmanager
def broker(providers: str, args: argparse.Namespace) -> Iterator[str]:
    """``broker serve`` (embedded), or with ``--postgres`` the production shape on PostgreSQL + Redis."""
    if not args.postgres:
        with broker_serve(providers) as url:
            yield url
        return
    redis.Redis.from_url(args.redis).flushdb()
    with tempfile.TemporaryDirectory() as tmp, postgres_database(args.postgres) as db_url, \
            LocalCluster(Path(tmp), db_url, args.redis, providers, workers=2,
                         env={"BROKER_AUTH_DISABLED": "true"}) as cluster:
        yield cluster.base_url


def p95(values: list[float]) -> float:
    return statistics.quantiles(values, n=100)[94] * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--lines", type=int, default=100_000)
    parser.add_argument("--rpm", type=int, default=12_000)
    parser.add_argument("--latency-ms", type=float, default=400.0)
    parser.add_argument("--rate", type=float, default=20.0)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--max-concurrency", type=int, default=512)
    parser.add_argument("--postgres", help="run LocalCluster (API, planner, 2 workers) on this PostgreSQL server...")
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/13", help="...and this Redis db (flushed)")
    args = parser.parse_args()
    with simulator("--rpm", str(args.rpm), "--latency-ms", str(args.latency_ms)) as sim_url:
        providers = f"""
[providers.sim]
base_url = "{sim_url}"
max_concurrency = {args.max_concurrency}
rpm = {args.rpm}
models = {{ "gpt-4o-mini" = {{ input = 0.15, output = 0.6 }} }}
"""
        stats_url = sim_url.removesuffix("/v1") + "/_sim/stats"
        with broker(providers, args) as base_url:
            idle, idle_429, idle_failed = asyncio.run(interactive(base_url, args.rate, args.seconds))
            client = openai.OpenAI(base_url=base_url, api_key="unused")
            upload = client.files.create(file=("mixed.jsonl", jsonl(chat_lines(args.lines, max_tokens=16))),
                                         purpose="batch")
            batch = client.batches.create(input_file_id=upload.id, endpoint="/v1/chat/completions",
                                          completion_window="24h")
            time.sleep(WARMUP_SECONDS)
            sim0, done0, t0 = httpx.get(stats_url).json(), _completed(client, batch.id), time.perf_counter()
            loaded, loaded_429, loaded_failed = asyncio.run(interactive(base_url, args.rate, args.seconds))
            sim1, done1, t1 = httpx.get(stats_url).json(), _completed(client, batch.id), time.perf_counter()
            client.batches.cancel(batch.id)
    window, allowed = t1 - t0, args.rpm / 60
    used = (sim1["successes"] - sim0["successes"]) / window / allowed
    batch_rate = (done1 - done0) / window
    left = allowed - len(loaded) / args.seconds
    ratio = p95(loaded) / p95(idle)
    print_table(
        f"{args.rate:g} interactive calls/s beside a {args.lines:,}-line batch, provider {args.rpm:,} rpm, "
        f"lognormal latency (median {args.latency_ms:g} ms)",
        ["figure", "value", "target"],
        [["interactive p95 idle / beside the batch", f"{p95(idle):.0f} / {p95(loaded):.0f} ms = {ratio:.2f}x",
          f"<= {TARGET_P95_RATIO}x"],
         ["interactive calls answered 429 (idle / beside)", f"{idle_429} / {loaded_429} (other failures "
          f"{idle_failed} / {loaded_failed})", "0"],
         ["provider limit used", f"{used:.1%} ({sim1['rate_limited'] - sim0['rate_limited']} upstream 429s)",
          f">= {TARGET_USED:.0%}"],
         ["batch share of what interactive leaves", f"{batch_rate / left:.1%} ({batch_rate:.0f} of {left:.0f} "
          "calls/s)", f">= {TARGET_BATCH_SHARE:.0%}"]],
    )


def _completed(client: openai.OpenAI, batch_id: str) -> int:
    counts = client.batches.retrieve(batch_id).request_counts
    return counts.completed if counts else 0


if __name__ == "__main__":
    main()
