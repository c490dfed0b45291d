"""What a worker process needs to run chunks: database, catalogue, pooled HTTP clients, a way to send."""

import asyncio
import logging
import time
from dataclasses import dataclass, field

import httpx
from sqlalchemy import Engine

from broker.catalogue import Catalogue, ProviderConfig
from broker.dispatch import SendChunk, release_and_send
from broker.results import store_outcomes
from broker.settings import Settings
from workers.execute import LineRunner, RetryPolicy, load_leased
from workers.providers.openai import OpenAICompatible, make_client

log = logging.getLogger(__name__)


@dataclass
class WorkerRuntime:
    engine: Engine
    settings: Settings
    catalogue: Catalogue
    send: SendChunk
    _clients: dict[str, httpx.AsyncClient] = field(default_factory=dict)

    @property
    def policy(self) -> RetryPolicy:
        s = self.settings
        return RetryPolicy(s.max_attempts, s.retry_base_seconds, s.retry_max_seconds)

    def client(self, provider: ProviderConfig) -> httpx.AsyncClient:
        """The process' pooled client for ``provider``; created on first use, on the worker's event loop."""
        if provider.name not in self._clients:
            self._clients[provider.name] = make_client(provider)
        return self._clients[provider.name]

    async def run_chunk(self, provider_name: str, line_ids: list[int]) -> None:
        provider = self.catalogue.get(provider_name)
        lines = await asyncio.to_thread(load_leased, self.engine, line_ids)
        if lines:
            runner = LineRunner(OpenAICompatible(self.client(provider)), self.policy,
                                provider.embedding_batch_size)
            outcomes = await runner.run(lines)
            await asyncio.to_thread(store_outcomes, self.engine, outcomes, time.time())
        # refill the provider's window at once instead of waiting for the planner's next tick
        await asyncio.to_thread(release_and_send, self.engine, provider, self.settings.lease_seconds, self.send)

    async def aclose(self) -> None:
        for client in self._clients.values():
            await client.aclose()
        self._clients.clear()
