"""Rate limiters: the same behaviour in memory and in Redis (fakeredis with Lua), shared between clients."""

import asyncio
from collections.abc import Iterator

import fakeredis
import pytest

from providers.limits import BURST_SECONDS, DECREASE_COOLDOWN, Limit, Limiter, LocalLimiter, RedisLimiter

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


UNCONFIGURED = Limit(rpm=None, tpm=None)


def test_a_provider_with_no_limit_learns_one_from_its_429s(limiters: tuple[Limiter, Limiter]) -> None:
    a, b = limiters

    async def scenario() -> tuple[list[float], float | None, float]:
        free = []
        for n in range(40):
            free.append(await (a if n % 2 else b).acquire("u", UNCONFIGURED, 0))
            await (b if n % 2 else a).settle("u", UNCONFIGURED, 0, 20)  # answered
        await asyncio.sleep(1.2)  # 40 answered over 1.2 s: 2,000 a minute
        await a.on_rate_limited("u", UNCONFIGURED)
        await b.on_rate_limited("u", UNCONFIGURED)  # same storm: learned once
        learned = (await b.state("u", UNCONFIGURED)).rpm
        return free, learned, await a.acquire("u", UNCONFIGURED, 0)

    free, learned, blocked = asyncio.run(scenario())
    assert free == [0.0] * 40, "no limit is applied before the provider refuses anything"
    # 40 answered over ~1.2 s, kept with a 5 % margin
    assert learned is not None and 1600 <= learned <= 1950, learned
    assert blocked > 0, "from the first 429 on, sends wait for the learned limit"


def test_retry_after_holds_every_send_back(limiters: tuple[Limiter, Limiter]) -> None:
    a, b = limiters

    async def scenario() -> tuple[float, float]:
        await a.acquire("r", UNCONFIGURED, 0)
        await a.on_rate_limited("r", UNCONFIGURED, retry_after=0.8)
        return await b.acquire("r", UNCONFIGURED, 0), await b.acquire("r", LIMIT, 1)

    unconfigured, configured = asyncio.run(scenario())
    assert 0.6 <= unconfigured <= 0.8 and configured > 0


def test_a_limit_that_keeps_dropping_is_cut_until_the_429s_stop(limiters: tuple[Limiter, Limiter]) -> None:
    a, b = limiters

    async def scenario() -> list[float | None]:
        seen = []
        for _ in range(3):
            await a.on_rate_limited("d", LIMIT)
            seen.append((await b.state("d", LIMIT)).rpm)
            await asyncio.sleep(DECREASE_COOLDOWN)
        return seen

    first, second, third = asyncio.run(scenario())
    assert first == pytest.approx(600 * 0.7) and second == pytest.approx(600 * 0.49)
    assert third == pytest.approx(600 * 0.343)


def test_headers_give_an_unconfigured_provider_its_limit(limiters: tuple[Limiter, Limiter]) -> None:
    a, b = limiters

    async def scenario() -> float | None:
        await a.on_headers("h", UNCONFIGURED, requests_limit=300, tokens_limit=None)
        return (await b.state("h", UNCONFIGURED)).rpm

    assert asyncio.run(scenario()) == 300


def test_only_a_limit_that_holds_calls_back_is_probed_up(limiters: tuple[Limiter, Limiter]) -> None:
    import providers.limits as limits

    a, b = limiters
    saved = limits.INCREASE_INTERVAL
    limits.INCREASE_INTERVAL = 0.0  # probe on every acquire that finds the limit holding calls back

    async def scenario() -> tuple[float | None, float | None]:
        await a.on_rate_limited("n", LIMIT)  # cut to 420 rpm, buckets emptied
        await b.acquire("n", LIMIT, 1)  # held back: probed
        busy = (await a.state("n", LIMIT)).rpm
        await asyncio.sleep(1.2 * BURST_SECONDS)  # the bucket fills up: the limit holds nothing back
        await b.acquire("n", LIMIT, 1)
        return busy, (await a.state("n", LIMIT)).rpm

    try:
        busy, idle = asyncio.run(scenario())
    finally:
        limits.INCREASE_INTERVAL = saved
    assert busy == pytest.approx(420 * 1.05)
    assert idle == busy, "a limit not reached says nothing about the provider: it is not raised"
