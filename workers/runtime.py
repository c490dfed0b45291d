"""What a worker process needs to run chunks: database, catalogue, pooled HTTP clients, a way to send."""

import asyncio
import logging
from dataclasses import dataclass, field

import httpx
from sqlalchemy import Engine

from broker.catalogue import Catalogue, ProviderConfig
from broker.dispatch import LeasedLine, SendChunk, finish_and_release
from broker.settings import Settings
from workers.execute import LineRunner, RetryPolicy
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

    async def run_chunk(self, provider_name: str, lines: list[LeasedLine]) -> None:
        provider = self.catalogue.get(provider_name)
        runner = LineRunner(OpenAICompatible(self.client(provider)), self.policy, provider.embedding_batch_size)
        outcomes = await runner.run(lines)
        # store and refill the provider's window at once, instead of waiting for the planner's next tick
        chunks = await asyncio.to_thread(finish_and_release, self.engine, provider, outcomes,
                                         self.settings.lease_seconds)
        for chunk in chunks:
            self.send(chunk)

    async def aclose(self) -> None:
        for client in self._clients.values():
            await client.aclose()
        self._clients.clear()
