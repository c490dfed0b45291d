"""The Dramatiq broker (Redis in production, in-process otherwise), the worker process and its actors.

A worker process' resources (pooled clients, shared limits, provider state) live in a :class:`WorkerRuntime`
that the :class:`WorkerProcess` middleware builds as the worker boots and closes, on the worker's event loop,
once its threads have stopped; the actors reach it through that middleware, not through a module global.
"""

import logging
import sys
import time
from collections.abc import Callable
from typing import Any

import dramatiq
from dramatiq.asyncio import EventLoopThread, get_event_loop_thread, set_event_loop_thread
from dramatiq.brokers.redis import RedisBroker
from dramatiq.brokers.stub import StubBroker
from dramatiq.middleware import AsyncIO, Middleware, ShutdownNotifications, TimeLimit

from broker.catalogue import Catalogue
from broker.dispatch import Chunk, LeasedLine, QueueGate
from workers.runtime import WorkerRuntime

if sys.platform != "win32":  # as pyproject.toml installs it
    import uvloop

log = logging.getLogger(__name__)
ACTOR_NAME = "run_lines"
NATIVE_ACTOR_NAME = "sync_native_batches"
WORKER_POLL_MS = 250  #: how long idle worker threads wait for a message; also how long stopping takes
ACTOR_TIME_LIMIT_MS = 3_600_000  #: the SQL lease, not Dramatiq, decides when a line is taken back


class UvloopAsyncIO(AsyncIO):
    """Dramatiq's :class:`AsyncIO` middleware with its event loop on uvloop where it is installed (everywhere but
    Windows; uvicorn serves the API on it too).

    Every upstream call of the process runs on this one loop: asyncio's own selector loop spent about a third of
    that thread's CPU in its socket callbacks and ``epoll`` bookkeeping, which uvloop does in C.
    """

    def before_worker_boot(self, broker: dramatiq.Broker, worker: dramatiq.Worker) -> None:
        thread = EventLoopThread(self.logger)
        if sys.platform != "win32":
            thread.loop.close()  # the loop of asyncio's policy, made by the constructor and never run
            thread.loop = uvloop.new_event_loop()
        thread.start(timeout=1.0)
        set_event_loop_thread(thread)


class WorkerProcess(Middleware):
    """Builds the process' :class:`WorkerRuntime` as the worker boots and closes it after it shuts down.

    Added after :class:`AsyncIO`: its ``before_worker_boot`` runs once the event loop is up and before any worker
    thread takes a message, its ``after_worker_shutdown`` while the loop still runs.
    """

    def __init__(self, build: Callable[[], WorkerRuntime]) -> None:
        self._build = build
        self.runtime: WorkerRuntime | None = None

    def before_worker_boot(self, broker: dramatiq.Broker, worker: dramatiq.Worker) -> None:
        self.runtime = self._build()

    def after_worker_shutdown(self, broker: dramatiq.Broker, worker: dramatiq.Worker) -> None:
        runtime, self.runtime = self.runtime, None
        loop_thread = get_event_loop_thread()
        if runtime is not None and loop_thread is not None:
            loop_thread.run_coroutine(runtime.aclose())

    def current(self) -> WorkerRuntime:
        if self.runtime is None:
            raise RuntimeError("the worker has not booted (or has shut down): no runtime to run lines with")
        return self.runtime

    async def run_lines(self, provider_name: str, lines: list[list[Any]]) -> None:
        self.current().accept(provider_name, [LeasedLine(*line) for line in lines])

    async def sync_native_batches(self, provider_name: str) -> None:
        await self.current().sync_native(provider_name)


def make_broker(redis_url: str | None, catalogue: Catalogue) -> dramatiq.Broker:
    """The queue every role of a process shares; it can send at once, and consume after :func:`start_worker`."""
    # no Retries middleware: retries live in SQL (attempts, not_before), see DESIGN.md
    middleware = [TimeLimit(), ShutdownNotifications(), UvloopAsyncIO()]
    broker: dramatiq.Broker = (
        RedisBroker(url=redis_url, middleware=middleware)  # type: ignore[no-untyped-call]
        if redis_url else StubBroker(middleware=middleware)
    )
    for provider in catalogue.providers.values():
        broker.declare_queue(provider.queue_name)
    return broker


def waiting_messages(broker: dramatiq.Broker, catalogue: Catalogue) -> dict[tuple[str, ...], float]:
    """Messages waiting in each provider's queue for a worker to take them, by provider."""
    if isinstance(broker, RedisBroker):
        return {(p.name,): broker.client.llen(f"{broker.namespace}:{p.queue_name}")
                for p in catalogue.providers.values()}
    return {(p.name,): broker.queues[p.queue_name].qsize() for p in catalogue.providers.values()}


def sender(broker: dramatiq.Broker, catalogue: Catalogue) -> QueueGate:
    def send(chunk: Chunk) -> None:
        queue_name = catalogue.get(chunk.provider).queue_name
        lines = [line.to_message() for line in chunk.lines]
        broker.enqueue(dramatiq.Message(queue_name=queue_name, actor_name=ACTOR_NAME,
                                        args=(chunk.provider, lines), kwargs={}, options={}))
    ping = broker.client.ping if isinstance(broker, RedisBroker) else (lambda: None)
    return QueueGate(send, ping)


def native_sender(broker: dramatiq.Broker, catalogue: Catalogue) -> Callable[[str], None]:
    """Asks a worker to submit, poll and collect one provider's native batches (the planner's ``sync_native``)."""
    def send(provider_name: str) -> None:
        broker.enqueue(dramatiq.Message(queue_name=catalogue.get(provider_name).queue_name,
                                        actor_name=NATIVE_ACTOR_NAME, args=(provider_name,), kwargs={}, options={}))
    return send


def start_worker(broker: dramatiq.Broker, threads: int,
                 build: Callable[[], WorkerRuntime]) -> tuple[dramatiq.Worker, WorkerProcess]:
    """Start consuming in this process (threads run chunks; each chunk runs its lines concurrently) with the
    runtime ``build`` makes at boot."""
    process = WorkerProcess(build)
    broker.add_middleware(process, after=AsyncIO)
    dramatiq.actor(actor_name=ACTOR_NAME, broker=broker, time_limit=ACTOR_TIME_LIMIT_MS)(process.run_lines)
    dramatiq.actor(actor_name=NATIVE_ACTOR_NAME, broker=broker,
                   time_limit=ACTOR_TIME_LIMIT_MS)(process.sync_native_batches)
    broker.emit_after("process_boot")
    worker = dramatiq.Worker(broker, worker_threads=threads, worker_timeout=WORKER_POLL_MS)
    worker.queue_prefetch = threads  # prefetched messages hide work from other workers
    worker.start()
    _until_running(worker)
    return worker, process


def _until_running(worker: dramatiq.Worker, timeout: float = 10.0) -> None:
    """Wait until every thread of ``worker`` has begun its loop.

    Dramatiq's threads set ``running = True`` as their first step: a ``stop()`` that comes before it is undone, and
    that thread (and the process' shutdown, joining it) never ends. A process stopped right after it started hung so.
    """
    threads = [*worker.workers, *worker.consumers.values()]
    deadline = time.monotonic() + timeout
    while not all(getattr(thread, "running", False) for thread in threads) and time.monotonic() < deadline:
        time.sleep(0.005)
