"""A failure inside the broker (here: the shared-limit store is down) retries the lines instead of losing them."""

import asyncio

import httpx

from broker.catalogue import ModelSpec, ProviderConfig
from broker.dispatch import LeasedLine
from providers.limits import Limit, LimitState
from providers.openai import OpenAICompatible
from providers.throttle import ProviderThrottle
from simulator import SimulatorServer
from workers.execute import LineRunner, RetryPolicy


class DownLimiter:
    """A limiter whose store cannot be reached."""

    async def acquire(self, key: str, limit: Limit, tokens: int) -> float:
        raise ConnectionError("limit store unreachable")

    async def settle(self, key: str, limit: Limit, estimated: int, actual: int) -> None: ...

    async def on_rate_limited(self, key: str, limit: Limit, retry_after: float | None = None) -> None: ...

    async def on_headers(self, key: str, limit: Limit, requests_limit: int | None,
                         tokens_limit: int | None) -> None: ...

    async def state(self, key: str, limit: Limit) -> LimitState:
        return LimitState(None, None)


def test_lines_whose_call_fails_inside_the_broker_come_back_as_retries() -> None:
    provider = ProviderConfig(name="p", base_url="http://127.0.0.1:9/v1", rpm=60, models={"m": ModelSpec()})
    lines = [LeasedLine(i, "b", "/v1/chat/completions", '{"model": "m", "messages": []}', 1, None) for i in range(3)]

    async def run() -> list[str]:
        async with httpx.AsyncClient(base_url=provider.base_url) as client:
            runner = LineRunner(OpenAICompatible(client), RetryPolicy(5, 0.01, 0.1),
                                ProviderThrottle(provider, DownLimiter()))
            return [f"{o.status}:{o.error_code}" for o in await runner.run(lines)]

    assert asyncio.run(run()) == ["retry:broker_error"] * 3


class LosesOutcomes(DownLimiter):
    """A limit store that admits calls, then goes away before it hears how they ended."""

    async def acquire(self, key: str, limit: Limit, tokens: int) -> float:
        return 0.0

    async def settle(self, key: str, limit: Limit, estimated: int, actual: int) -> None:
        raise ConnectionError("limit store unreachable")

    async def on_rate_limited(self, key: str, limit: Limit, retry_after: float | None = None) -> None:
        raise ConnectionError("limit store unreachable")


def test_a_call_made_keeps_its_answer_when_the_limit_store_goes_away(sim: SimulatorServer) -> None:
    provider = ProviderConfig(name="p", base_url=sim.base_url, rpm=600, models={"gpt-4o-mini": ModelSpec()})
    body = '{"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}'
    lines = [LeasedLine(i, "b", "/v1/chat/completions", body, 1, None) for i in range(3)]

    async def run() -> list[str]:
        async with httpx.AsyncClient(base_url=provider.base_url) as client:
            runner = LineRunner(OpenAICompatible(client), RetryPolicy(5, 0.01, 0.1),
                                ProviderThrottle(provider, LosesOutcomes()))
            return [str(o.status) for o in await runner.run(lines)]

    assert asyncio.run(run()) == ["succeeded"] * 3
    assert sim.stats.requests == 3, "no call is made again because the limiter missed its outcome"
