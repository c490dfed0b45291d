"""What a worker process needs to run lines: the Core, pooled HTTP clients, shared limits, a flow per provider."""

import asyncio
import logging
import os
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import httpx
import redis.asyncio as aioredis

from broker.catalogue import ProviderConfig
from broker.core import Core
from broker.dispatch import LeasedLine, SendChunk
from broker.provider_state import publish
from providers.circuit import Circuits
from providers.limits import Limiter, LocalLimiter, RedisLimiter
from providers.registry import kind_of
from providers.throttle import ProviderThrottle
from workers.execute import LineRunner, RetryPolicy
from workers.flow import ProviderFlow
from workers.leases import LeaseKeeper
from workers.native import sync_provider
from workers.project_limits import ProjectLimits

log = logging.getLogger(__name__)
PUBLISH_INTERVAL = 2.0  #: seconds between this process' provider-state reports
LIMITER_CONNECTIONS = 32  #: Redis connections a worker process uses for shared limits


def _log_failure(task: "asyncio.Task[None]") -> None:
    if not task.cancelled() and (exc := task.exception()) is not None:
        log.error("publishing provider state failed", exc_info=exc)


def _redis_client(url: str) -> aioredis.Redis:
    """Callers queue for a connection instead of failing when every line of every chunk waits on a limit."""
    pool = aioredis.BlockingConnectionPool.from_url(url, max_connections=LIMITER_CONNECTIONS, timeout=None)
    return aioredis.Redis(connection_pool=pool)


@dataclass
class WorkerRuntime:
    core: Core
    send: SendChunk
    #: wakes the process' planner, if it runs one: a batch's last line ended, it can be finalized now
    wake_planner: Callable[[], None] = lambda: None
    #: shared limits; None until first use (a Redis client belongs to the event loop that made it)
    limiter: Limiter | None = None
    worker_id: str = field(default_factory=lambda: f"{socket.gethostname()}:{os.getpid()}")
    _clients: dict[str, httpx.AsyncClient] = field(default_factory=dict)
    _throttles: dict[str, ProviderThrottle] = field(default_factory=dict)
    #: the process' circuit breakers, shared with its API's interactive calls in embedded mode
    circuits: Circuits = field(default_factory=Circuits)
    _flows: dict[str, ProviderFlow] = field(default_factory=dict)
    _leases: LeaseKeeper | None = None
    _project_limits: ProjectLimits | None = None
    _renewing: "asyncio.Task[None] | None" = None
    _published_at: float = 0.0
    _publishing: "asyncio.Task[None] | None" = None
    _logged_rpm: dict[str, float] = field(default_factory=dict)  #: last limit in force written to the log

    @property
    def policy(self) -> RetryPolicy:
        s = self.core.settings
        return RetryPolicy(s.max_attempts, s.retry_base_seconds, s.retry_max_seconds)

    def client(self, provider: ProviderConfig) -> httpx.AsyncClient:
        """The process' pooled client for ``provider``, created on first use, on the worker's loop."""
        if provider.name not in self._clients:
            self._clients[provider.name] = kind_of(provider).client(provider)
        return self._clients[provider.name]

    def throttle(self, provider: ProviderConfig) -> ProviderThrottle:
        if self.limiter is None:
            redis_url = self.core.settings.redis_url
            self.limiter = RedisLimiter(_redis_client(redis_url)) if redis_url else LocalLimiter()
        if provider.name not in self._throttles:
            self._throttles[provider.name] = ProviderThrottle(provider, self.limiter)
        return self._throttles[provider.name]

    def accept(self, provider_name: str, lines: list[LeasedLine]) -> None:
        """Start the lines' upstream calls on this (the worker's) loop and return; as each call ends its outcome is
        stored and its slot refilled (workers/flow.py). Lines whose lease ended before they arrived are dropped."""
        leases = self._lease_keeper()
        held = [line for line in lines if leases.take(line)]
        if len(held) < len(lines):
            log.info("dropped %d lines whose lease ended before their message arrived", len(lines) - len(held))
        provider = self.core.catalogue.get(provider_name)
        adapter = kind_of(provider).realtime(self.client(provider))
        circuit = self.circuits(provider.name)
        if self._project_limits is None:
            self._project_limits = ProjectLimits(self.core.engine)
        runner = LineRunner(adapter, self.policy, self.throttle(provider), self.core.catalogue, circuit, leases.holds,
                            self._project_limits)
        self.flow(provider).start(runner.calls(held))

    def _lease_keeper(self) -> LeaseKeeper:
        """The process' leases, renewed by a task on the worker's loop (started with the first lines)."""
        if self._leases is None:
            self._leases = LeaseKeeper(self.core.engine, self.core.settings.lease_seconds)
            self._renewing = asyncio.ensure_future(self._leases.keep_alive())
        return self._leases

    def flow(self, provider: ProviderConfig) -> ProviderFlow:
        if provider.name not in self._flows:
            self._flows[provider.name] = ProviderFlow(self.core.engine, provider, self._lease_keeper(), self.send,
                                                      self._publish_now_and_then, self.wake_planner)
        return self._flows[provider.name]

    def _publish_now_and_then(self) -> None:
        """Report provider state every PUBLISH_INTERVAL, in a task of its own."""
        if time.monotonic() - self._published_at < PUBLISH_INTERVAL:
            return
        self._published_at = time.monotonic()
        self._publishing = asyncio.ensure_future(self.publish_state())
        self._publishing.add_done_callback(_log_failure)

    async def sync_native(self, provider_name: str) -> None:
        """Submit, poll and collect the provider's native batches that are due."""
        provider = self.core.catalogue.get(provider_name)
        await sync_provider(self.core.engine, provider, kind_of(provider).native_batch(self.client(provider)))

    async def publish_state(self) -> None:
        rows = []
        for name, throttle in self._throttles.items():
            row = await throttle.report(self.worker_id, self.circuits.down(name))
            rows.append(row)
            rpm, logged = row.rpm_in_force, self._logged_rpm.get(name)
            if rpm is not None and (logged is None or abs(rpm - logged) > 0.05 * logged):
                self._logged_rpm[name] = rpm
                log.info("provider %s: %.0f rpm in force (configured %s), %.1f%% of calls got 429 in the last "
                         "minute, p50 %s ms", name, rpm, throttle.provider.rpm,
                         100 * throttle.stats.rate_limited_share(),
                         f"{row.p50_ms:.0f}" if row.p50_ms is not None else "-")
        if rows:
            await asyncio.to_thread(publish, self.core.engine, rows)

    async def aclose(self) -> None:
        """Hand back what is running, store what has ended, then close clients and the limiter."""
        for flow in self._flows.values():
            await flow.aclose()
        if self._renewing is not None:
            self._renewing.cancel()
            await asyncio.gather(self._renewing, return_exceptions=True)
        if self._publishing is not None:
            await asyncio.gather(self._publishing, return_exceptions=True)
        for client in self._clients.values():
            await client.aclose()
        self._clients.clear()
        if isinstance(self.limiter, RedisLimiter):
            await self.limiter.client.aclose()
