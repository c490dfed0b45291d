"""Which shared rate limiter: Dramatiq's (Redis backend) or ours (a Lua token bucket, providers/limits.py)?

Two worker processes hammer one shared limit of ``--rate`` requests per second for ``--seconds``; each records the
instants it was allowed through. Ours is driven exactly as a worker drives it: ``ProviderThrottle.before`` (one
reservation, then a wait of the length it answers), the call, ``ProviderThrottle.after`` (the tokens settled, 429s
and headers learned), from ``--tasks`` concurrent tasks per process like a worker's concurrent calls. Compared:
requests admitted per second vs the limit (use of the limit and overshoot in any one second), limiter calls (Redis
round trips) per admitted request, on a private ``redis-server`` on a free port, and whether a caller learns how long
to wait (Dramatiq's limiters only say yes or no, so a caller must poll; ours answers with
the wait). Run: ``python -m benchmarks.limiter_backends [--rate 100] [--seconds 10] [--tasks 32]``.
"""

import argparse
import asyncio
import multiprocessing
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import redis
import redis.asyncio as aioredis
from dramatiq.rate_limits import BucketRateLimiter, WindowRateLimiter
from dramatiq.rate_limits.backends import RedisBackend

from benchmarks._common import print_table
from broker.catalogue import ModelSpec, ProviderConfig
from broker.tokens import admission_tokens
from cli.local_cluster import LocalRedis
from providers.limits import RedisLimiter
from providers.throttle import ProviderThrottle

POLL_SECONDS = 0.005  #: how often a Dramatiq caller retries after being refused


def _dramatiq_worker(kind: str, url: str, rate: int, seconds: float, out: Any) -> None:
    backend = RedisBackend(url=url)
    limiter = (BucketRateLimiter(backend, "bench-bucket", limit=rate, bucket=1000) if kind == "bucket"
               else WindowRateLimiter(backend, "bench-window", limit=rate, window=1))
    admitted, calls, end = [], 0, time.time() + seconds
    while time.time() < end:
        calls += 1  # one acquire: one round trip at least
        with limiter.acquire(raise_on_failure=False) as acquired:
            if acquired:
                admitted.append(time.time())
                continue
        time.sleep(POLL_SECONDS)
    out.put((admitted, calls))


class CountingLimiter(RedisLimiter):
    """The broker's limiter, counting its round trips to Redis (one Lua script run each)."""

    calls = 0

    async def _run(self, *args: Any, **kwargs: Any) -> float:
        self.calls += 1
        return await super()._run(*args, **kwargs)


def _lua_worker(url: str, rate: int, seconds: float, tasks: int, out: Any) -> None:
    provider = ProviderConfig(name="bench", base_url="http://127.0.0.1:9/v1", rpm=rate * 60,
                              models={"m": ModelSpec()})
    body = {"model": "m", "messages": [{"role": "user", "content": "Say something about item 1."}]}
    tokens = admission_tokens("/v1/chat/completions", body)

    async def run() -> tuple[list[float], int]:
        limiter = CountingLimiter(aioredis.from_url(url))
        throttle, admitted, end = ProviderThrottle(provider, limiter), [], time.time() + seconds

        async def calls() -> None:
            while time.time() < end:
                await throttle.before("m", tokens)
                admitted.append(time.time())
                await throttle.after("m", 0.0, tokens, tokens + 12, (None, None), rate_limited=False)

        await asyncio.gather(*(calls() for _ in range(tasks)))
        await limiter.client.aclose()
        return admitted, limiter.calls

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
    calls = sum(c for _, c in results)
    stamps = sorted(t for admitted, _ in results for t in admitted)
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
    parser.add_argument("--tasks", type=int, default=32, help="concurrent callers per process (ours)")
    a = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, LocalRedis(Path(tmp)) as server:
        url = server.url
        rows = [
            measure(f"ours, as the broker runs it: Lua token bucket, async, {a.tasks} tasks per process",
                    _lua_worker, (url, a.rate, a.seconds, a.tasks), a.rate, a.seconds, url) + ["yes"],
            measure("Dramatiq BucketRateLimiter (sync, poll 5 ms)", _dramatiq_worker,
                    ("bucket", url, a.rate, a.seconds), a.rate, a.seconds, url) + ["no"],
            measure("Dramatiq WindowRateLimiter (sync, poll 5 ms)", _dramatiq_worker,
                    ("window", url, a.rate, a.seconds), a.rate, a.seconds, url) + ["no"],
        ]
    print_table(f"Shared limit of {a.rate}/s, two processes, {a.seconds:.0f} s",
                ["limiter", "first second", "limit used (steady)", "busiest later second",
                 "limiter calls per admitted request", "caller learns the wait"], rows)


if __name__ == "__main__":
    main()
