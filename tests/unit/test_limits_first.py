"""The lane of interactive calls in the shared buckets: they go ahead of batch lines' debt, and batch lines wait
for what they took."""

import asyncio
import time
from collections.abc import Iterator
from types import SimpleNamespace

import fakeredis
import pytest

from providers import limits
from providers.limits import Limit, Limiter, LocalLimiter, RedisLimiter

LIMIT = Limit(rpm=600, tpm=None)  # 10 requests a second, a burst of 10


@pytest.fixture(autouse=True)
def still_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    """The waits below are reckoned from one instant: a loaded machine's pauses between calls refill no bucket."""
    wall, mono = time.time(), time.monotonic()
    monkeypatch.setattr(limits, "time", SimpleNamespace(time=lambda: wall, monotonic=lambda: mono))


@pytest.fixture(params=["local", "redis"])
def limiter(request: pytest.FixtureRequest) -> Iterator[Limiter]:
    if request.param == "local":
        yield LocalLimiter()
        return
    yield RedisLimiter(fakeredis.FakeAsyncRedis(server=fakeredis.FakeServer()))


def test_interactive_calls_skip_the_batch_queue_and_push_it_back(limiter: Limiter) -> None:
    async def scenario() -> tuple[list[float], float, float]:
        batch = [await limiter.acquire("p", LIMIT, 0) for _ in range(30)]  # 20 requests of debt: ~2 s of queue
        first = await limiter.acquire_first("p", LIMIT, 0)
        later = await limiter.acquire("p", LIMIT, 0)
        return batch, first, later

    batch, first, later = asyncio.run(scenario())
    assert batch[-1] == pytest.approx(2.0, abs=0.1)
    assert first == 0, "an interactive call does not queue behind batch lines"
    assert later == pytest.approx(2.2, abs=0.1), "the next batch line waits for the interactive call's request too"


def test_interactive_calls_alone_keep_to_the_limit(limiter: Limiter) -> None:
    async def scenario() -> list[float]:
        return [await limiter.acquire_first("p", LIMIT, 0) for _ in range(12)]

    waits = asyncio.run(scenario())
    assert waits[:10] == [0] * 10
    assert waits[10] == pytest.approx(0.1, abs=0.02) and waits[11] == pytest.approx(0.2, abs=0.02)
