"""Which shared rate limiter: Dramatiq's (Redis backend) or ours (a Lua token bucket, providers/limits.py)?

Two worker processes hammer one shared limit of ``--rate`` requests per second for ``--seconds``; each records the
instants it was allowed through. Compared: requests admitted per second vs the limit (use of the limit and
overshoot in any one second), Redis round trips per admitted request, and whether a caller learns how long to
wait (Dramatiq's limiters only say yes or no, so a caller must poll; ours answers with the wait).
Run: ``python -m benchmarks.limiter_backends [--rate 100] [--seconds 10] [--redis redis://127.0.0.1:6379/11]``.
"""

import argparse
import asyncio
import multiprocessing
import time
from collections import Counter
from typing import Any

import redis
import redis.asyncio as aioredis
from dramatiq.rate_limits import BucketRateLimiter, WindowRateLimiter
from dramatiq.rate_limits.backends import RedisBackend

from benchmarks._common import print_table
from providers.limits import Limit, RedisLimiter

POLL_SECONDS = 0.005  #: how often a Dramatiq caller retries after being refused


def _dramatiq_worker(kind: str, url: str, rate: int, seconds: float, out: Any) -> None:
    backend = RedisBackend(url=url)
    limiter = (BucketRateLimiter(backend, "bench-bucket", limit=rate, bucket=1000) if kind == "bucket"
               else WindowRateLimiter(backend, "bench-window", limit=rate, window=1))
    admitted, calls, end = [], 0, time.time() + seconds
    while time.time() < end:
        calls += 1
        with limiter.acquire(raise_on_failure=False) as acquired:
            if acquired:
                admitted.append(time.time())
                continue
        time.sleep(POLL_SECONDS)
    out.put((admitted, calls))


def _lua_worker(url: str, rate: int, seconds: float, out: Any) -> None:
    async def run() -> tuple[list[float], int]:
        limiter = RedisLimiter(aioredis.from_url(url), prefix="bench-lua:")
        limit, admitted, calls, end = Limit(rpm=rate * 60, tpm=None), [], 0, time.time() + seconds
        while time.time() < end:
            calls += 1
            wait = await limiter.acquire("p", limit, 0)
            if wait == 0:
                admitted.append(time.time())
            else:
                await asyncio.sleep(wait)
        await limiter.client.aclose()
        return admitted, calls

    out.put(asyncio.run(run()))


def measure(name: str, target: Any, args: tuple[Any, ...], rate: int, seconds: float, url: str) -> list[str]:
    redis.Redis.from_url(url).flushdb()
    out: Any = multiprocessing.Queue()
    procs = [multiprocessing.Process(target=target, args=(*args, out)) for _ in range(2)]
    for p in procs:
        p.start()
    results = [out.get() for _ in procs]
    for p in procs:
        p.join()
    stamps = sorted(t for admitted, _ in results for t in admitted)
    calls = sum(c for _, c in results)
    start = stamps[0]
    per_second = Counter(int(t - start) for t in stamps if t - start < seconds - 1)
    steady = [per_second.get(s, 0) for s in range(1, int(seconds) - 1)]  # skip the initial burst second
    mean = sum(steady) / max(1, len(steady))
    worst = max(steady)
    return [name, f"{per_second.get(0, 0)}", f"{mean / rate:.1%}", f"{worst} ({worst / rate:.0%})",
            f"{calls / max(1, len(stamps)):.1f}"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rate", type=int, default=100)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/11")
    a = parser.parse_args()
    rows = [
        measure("ours: Lua token bucket, async, answers the wait", _lua_worker, (a.redis, a.rate, a.seconds),
                a.rate, a.seconds, a.redis) + ["yes"],
        measure("Dramatiq BucketRateLimiter (sync, poll 5 ms)", _dramatiq_worker,
                ("bucket", a.redis, a.rate, a.seconds), a.rate, a.seconds, a.redis) + ["no"],
        measure("Dramatiq WindowRateLimiter (sync, poll 5 ms)", _dramatiq_worker,
                ("window", a.redis, a.rate, a.seconds), a.rate, a.seconds, a.redis) + ["no"],
    ]
    print_table(f"Shared limit of {a.rate}/s, two processes, {a.seconds:.0f} s",
                ["limiter", "first second", "limit used (steady)", "busiest later second",
                 "Redis calls per admitted request", "caller learns the wait"], rows)


if __name__ == "__main__":
    main()
