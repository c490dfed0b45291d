"""The Dramatiq broker (Redis in production, in-process otherwise), the line actor and the worker."""

import logging
from collections.abc import Callable
from typing import Any

import dramatiq
from dramatiq.brokers.redis import RedisBroker
from dramatiq.brokers.stub import StubBroker
from dramatiq.middleware import AsyncIO, ShutdownNotifications, TimeLimit

from broker.catalogue import Catalogue
from broker.dispatch import Chunk, LeasedLine, SendChunk
from workers.runtime import WorkerRuntime

log = logging.getLogger(__name__)
ACTOR_NAME = "run_lines"
NATIVE_ACTOR_NAME = "sync_native_batches"
WORKER_POLL_MS = 250  #: how long idle worker threads wait for a message; also how long stopping takes
ACTOR_TIME_LIMIT_MS = 3_600_000  #: the SQL lease, not Dramatiq, decides when a line is taken back

_runtime: WorkerRuntime | None = None  # one per process: the actor below finds its resources here


async def run_lines(provider_name: str, lines: list[list[Any]]) -> None:
    if _runtime is None:
        raise RuntimeError("worker runtime not installed; call workers.queue.install() first")
    await _runtime.run_chunk(provider_name, [LeasedLine(*line) for line in lines])


async def sync_native_batches(provider_name: str) -> None:
    if _runtime is None:
        raise RuntimeError("worker runtime not installed; call workers.queue.install() first")
    await _runtime.sync_native(provider_name)


def make_broker(redis_url: str | None, catalogue: Catalogue) -> dramatiq.Broker:
    # no Retries middleware: retries live in SQL (attempts, not_before), see DESIGN.md
    middleware = [TimeLimit(), ShutdownNotifications(), AsyncIO()]
    broker: dramatiq.Broker = (
        RedisBroker(url=redis_url, middleware=middleware)  # type: ignore[no-untyped-call]
        if redis_url else StubBroker(middleware=middleware)
    )
    dramatiq.actor(actor_name=ACTOR_NAME, broker=broker, time_limit=ACTOR_TIME_LIMIT_MS)(run_lines)
    dramatiq.actor(actor_name=NATIVE_ACTOR_NAME, broker=broker, time_limit=ACTOR_TIME_LIMIT_MS)(sync_native_batches)
    for provider in catalogue.providers.values():
        broker.declare_queue(provider.queue_name)
    return broker


def sender(broker: dramatiq.Broker, catalogue: Catalogue) -> SendChunk:
    def send(chunk: Chunk) -> None:
        queue_name = catalogue.get(chunk.provider).queue_name
        lines = [line.to_message() for line in chunk.lines]
        broker.enqueue(dramatiq.Message(queue_name=queue_name, actor_name=ACTOR_NAME,
                                        args=(chunk.provider, lines), kwargs={}, options={}))
    return send


def native_sender(broker: dramatiq.Broker, catalogue: Catalogue) -> Callable[[str], None]:
    """Asks a worker to submit, poll and collect one provider's native batches (the planner's ``sync_native``)."""
    def send(provider_name: str) -> None:
        broker.enqueue(dramatiq.Message(queue_name=catalogue.get(provider_name).queue_name,
                                        actor_name=NATIVE_ACTOR_NAME, args=(provider_name,), kwargs={}, options={}))
    return send


def install(runtime: WorkerRuntime) -> None:
    global _runtime
    _runtime = runtime


def start_worker(broker: dramatiq.Broker, threads: int) -> Any:
    """Start consuming in this process (threads run chunks; each chunk runs its lines concurrently)."""
    broker.emit_after("process_boot")
    worker = dramatiq.Worker(broker, worker_threads=threads, worker_timeout=WORKER_POLL_MS)
    worker.queue_prefetch = threads  # prefetched messages hide work from other workers
    worker.start()
    return worker
