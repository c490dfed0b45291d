"""Rate limiters: the same behaviour in memory and in Redis (fakeredis with Lua), shared between clients."""

import asyncio
from collections.abc import Iterator

import fakeredis
import pytest

from providers.limits import BURST_SECONDS, Limit, Limiter, LocalLimiter, RedisLimiter

LIMIT = Limit(rpm=600, tpm=60_000)  # 10 requests / s, 1000 tokens / s


@pytest.fixture(params=["local", "redis"])
def limiters(request: pytest.FixtureRequest) -> Iterator[tuple[Limiter, Limiter]]:
    """Two limiter handles over the same state (two worker processes, in the Redis case)."""
    if request.param == "local":
        one = LocalLimiter()
        yield one, one
        return
    server = fakeredis.FakeServer()
    a = fakeredis.FakeAsyncRedis(server=server)
    b = fakeredis.FakeAsyncRedis(server=server)
    yield RedisLimiter(a), RedisLimiter(b)


def test_burst_then_wait_shared_between_handles(limiters: tuple[Limiter, Limiter]) -> None:
    a, b = limiters
    slow = Limit(rpm=60, tpm=None)  # one request a second, a burst of BURST_SECONDS requests
    burst = max(1, int(BURST_SECONDS))

    async def scenario() -> list[float]:
        waits = []
        for n in range(burst + 1):
            waits.append(await (a if n % 2 else b).acquire("p", slow, 10))
        return waits

    waits = asyncio.run(scenario())
    assert all(w == 0 for w in waits[:burst]), "a full bucket grants a burst"
    assert 0.5 <= waits[burst] <= 1.0, "then one request a second, whichever handle asks"


def test_tokens_limit_and_settle(limiters: tuple[Limiter, Limiter]) -> None:
    a, b = limiters
    limit = Limit(rpm=None, tpm=6000)  # 100 tokens / s
    size = int(100 * BURST_SECONDS)  # a full bucket

    async def scenario() -> tuple[float, float, float]:
        first = await a.acquire("t", limit, size)
        blocked = await b.acquire("t", limit, size // 2)
        await a.settle("t", limit, estimated=size, actual=size // 10)  # the call used less: give the rest back
        after = await b.acquire("t", limit, size // 2)
        return first, blocked, after

    first, blocked, after = asyncio.run(scenario())
    assert first == 0 and 0.4 * BURST_SECONDS <= blocked <= 0.55 * BURST_SECONDS
    assert after < 0.2 * BURST_SECONDS, "tokens given back shorten the wait of the next caller"


def test_429_cuts_the_limit_and_headers_cap_it(limiters: tuple[Limiter, Limiter]) -> None:
    a, b = limiters

    async def scenario() -> tuple[float | None, float | None, float | None]:
        await a.acquire("x", LIMIT, 1)
        await a.on_rate_limited("x", LIMIT)
        await b.on_rate_limited("x", LIMIT)  # same storm: cut once
        cut = (await b.state("x", LIMIT)).rpm
        await a.on_headers("x", LIMIT, requests_limit=100, tokens_limit=None)
        capped = (await b.state("x", LIMIT)).rpm
        blocked = await b.acquire("x", LIMIT, 1)
        return cut, capped, blocked

    cut, capped, blocked = asyncio.run(scenario())
    assert cut == pytest.approx(600 * 0.7)
    assert capped == 100
    assert blocked > 0, "after a 429 the bucket is emptied"
    state = asyncio.run(a.state("x", LIMIT))
    assert state.rate_limited == 2 and state.last_429_at is not None


def test_probing_up_stops_at_the_ceiling_the_provider_announced(limiters: tuple[Limiter, Limiter]) -> None:
    import providers.limits as limits

    a, b = limiters
    saved = limits.INCREASE_INTERVAL
    limits.INCREASE_INTERVAL = 0.0  # probe on every acquire

    async def scenario() -> float | None:
        await a.acquire("c", LIMIT, 1)
        await a.on_headers("c", LIMIT, requests_limit=300, tokens_limit=None)
        for _ in range(20):
            await b.acquire("c", LIMIT, 1)
        return (await a.state("c", LIMIT)).rpm

    try:
        assert asyncio.run(scenario()) == 300
    finally:
        limits.INCREASE_INTERVAL = saved
