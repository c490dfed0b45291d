"""Priority and fairness at release time, measured from outside.

1. A 100,000-line ``low`` backlog is running; a 1-line ``urgent`` batch is created: how long until it is done?
   Target: dispatched <= 1 s after create, so done <= 1 s + the upstream latency.
2. Two projects share one provider at equal priority: 50,000 lines from one, then 500 from the other. Target: the
   small batch finishes within 2x its fair-share time (its lines at half of the provider's measured throughput).

The broker runs in its production shape (API, planner, one worker; PostgreSQL + Redis), the simulator in its own
process with lognormal latency. Run: ``python -m benchmarks.priority [--latency-ms 200] [--concurrency 64]``.
"""

import argparse
import os
import tempfile
import time
from pathlib import Path

import httpx
import openai
import redis
from openai.types import Batch

from benchmarks._common import chat_lines, jsonl, postgres_database, print_table, simulator
from cli.local_cluster import LocalCluster

URGENT_DISPATCH_TARGET = 1.0  #: seconds from create to dispatch
FAIR_SHARE_FACTOR = 2.0  #: the small project finishes within this many fair-share times


def _create(client: openai.OpenAI, n: int, **extra: object) -> Batch:
    upload = client.files.create(file=("lines.jsonl", jsonl(chat_lines(n))), purpose="batch")
    return client.batches.create(input_file_id=upload.id, endpoint="/v1/chat/completions", completion_window="24h",
                                 extra_body=extra or None)


def _until(client: openai.OpenAI, batch_id: str, statuses: tuple[str, ...], poll: float = 0.02) -> Batch:
    while (batch := client.batches.retrieve(batch_id)).status not in statuses:
        time.sleep(poll)
    return batch


def _done(batch: Batch) -> int:
    counts = batch.request_counts
    return counts.completed + counts.failed if counts else 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--latency-ms", type=float, default=200.0)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--postgres", default=os.environ.get("BROKER_TEST_DATABASE_URL",
                                                             "postgresql://postgres@127.0.0.1:5432/test"))
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/12")
    args = parser.parse_args()
    rows = []
    with simulator("--latency-ms", str(args.latency_ms)) as sim_url, postgres_database(args.postgres) as pg_url, \
            tempfile.TemporaryDirectory() as tmp:
        providers = (f'[providers.sim]\nbase_url = "{sim_url}"\nmax_concurrency = {args.concurrency}\n'
                     '[providers.sim.models]\n"gpt-4o-mini" = { input = 0.15, output = 0.6 }\n')
        redis.Redis.from_url(args.redis).flushdb()
        with LocalCluster(Path(tmp), pg_url, args.redis, providers, workers=1, worker_threads=32,
                          env={"BROKER_PLANNER_INTERVAL": "0.1"}) as cluster:
            big_client = openai.OpenAI(base_url=cluster.base_url, api_key=cluster.run("keys", "create", "--project",
                                                                                      "big").splitlines()[-1])
            small_client = openai.OpenAI(base_url=cluster.base_url, api_key=cluster.run(
                "keys", "create", "--project", "small").splitlines()[-1])

            backlog = _create(big_client, 100_000, priority="low")
            _until(big_client, backlog.id, ("in_progress",))
            time.sleep(5)  # the backlog is in full flow
            start = time.perf_counter()
            urgent = _create(small_client, 1, priority="urgent")
            _until(small_client, urgent.id, ("completed", "failed"))
            urgent_s = time.perf_counter() - start
            auth = {"Authorization": f"Bearer {big_client.api_key}"}
            latency = httpx.get(f"{cluster.base_url}/providers", headers=auth).json()["data"][0]["latency_ms"]
            p95 = (latency["p95"] or args.latency_ms) / 1000
            rows.append(["urgent 1-line batch behind a 100k low backlog: create -> completed",
                         f"{urgent_s:.2f} s", f"<= {URGENT_DISPATCH_TARGET:.0f} s + upstream p95 {p95:.2f} s",
                         "yes" if urgent_s <= URGENT_DISPATCH_TARGET + p95 else "NO"])
            big_client.batches.cancel(backlog.id)
            _until(big_client, backlog.id, ("cancelled",))

            big = _create(big_client, 50_000)
            _until(big_client, big.id, ("in_progress",))
            time.sleep(5)
            big_before = _done(big_client.batches.retrieve(big.id))
            start = time.perf_counter()
            small = _create(small_client, 500)
            _until(small_client, small.id, ("completed", "failed"), poll=0.05)
            small_s = time.perf_counter() - start
            big_during = _done(big_client.batches.retrieve(big.id)) - big_before
            throughput = (big_during + 500) / small_s
            fair_share_s = 500 / (throughput / 2)
            ratio = small_s / fair_share_s
            rows.append(["500 lines beside another project's 50k: time / fair-share time",
                         f"{small_s:.1f} s / {fair_share_s:.1f} s = {ratio:.2f}x", f"<= {FAIR_SHARE_FACTOR:.0f}x",
                         "yes" if ratio <= FAIR_SHARE_FACTOR else "NO"])
            rows.append(["provider throughput meanwhile", f"{throughput:.0f} lines/s", "", ""])
            big_client.batches.cancel(big.id)
    print_table(f"Priority and fairness (concurrency {args.concurrency}, upstream latency {args.latency_ms:.0f} ms)",
                ["figure", "measured", "target", "met"], rows)


if __name__ == "__main__":
    main()
