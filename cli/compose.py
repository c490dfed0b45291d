"""Wiring the layers into processes: embedded (everything in one) or one role per process."""

import logging
import threading
from dataclasses import dataclass, field
from typing import Any

import dramatiq
from prometheus_client import start_http_server
from prometheus_client.registry import Collector

from api.app import create_app
from api.context import ApiContext
from broker.core import Core
from broker.gauges import ScrapeGauge
from broker.leadership import Leadership
from broker.metrics import exposition
from broker.planner import Planner
from broker.webhooks.delivery import Deliverer
from providers.circuit import Circuits
from providers.limits import LocalLimiter
from workers.queue import WorkerProcess, make_broker, native_sender, sender, start_worker, waiting_messages
from workers.runtime import WorkerRuntime

log = logging.getLogger(__name__)


@dataclass
class Processes:
    """The background parts of a broker process, started as its role needs them, stopped in reverse."""

    core: Core
    queue: dramatiq.Broker | None = None
    worker: Any = None
    worker_process: WorkerProcess | None = None  #: holds the worker's runtime while it runs
    stop_event: threading.Event = field(default_factory=threading.Event)
    wake_event: threading.Event = field(default_factory=threading.Event)
    planner_thread: threading.Thread | None = None
    webhook_thread: threading.Thread | None = None
    schedules_thread: threading.Thread | None = None
    leadership_thread: threading.Thread | None = None
    collectors: list[Collector] = field(default_factory=list)  #: scrape-time gauges of the roles started here
    metrics_server: Any = None  #: the WSGI server of serve_metrics
    #: without Redis, the API's interactive calls and the in-process workers share these buckets
    local_limiter: LocalLimiter = field(default_factory=LocalLimiter)
    #: one breaker per provider for the process' batch lines and interactive calls alike
    circuits: Circuits = field(default_factory=Circuits)
    context: ApiContext | None = None  #: the API's, once made

    @property
    def shared_limiter(self) -> LocalLimiter | None:
        return None if self.core.settings.redis_url else self.local_limiter

    def _queue(self) -> dramatiq.Broker:
        if self.queue is None:
            self.queue = make_broker(self.core.settings.redis_url, self.core.catalogue)
        return self.queue

    def start_workers(self, threads: int) -> None:
        queue = self._queue()
        self.worker, self.worker_process = start_worker(
            queue, threads, lambda: WorkerRuntime(self.core, sender(queue, self.core.catalogue),
                                                  wake_planner=self.wake_event.set, limiter=self.shared_limiter,
                                                  circuits=self.circuits))

    def planner(self, leadership: Leadership | None = None) -> Planner:
        c = self.core
        queue = self._queue()
        planner = Planner(c, sender(queue, c.catalogue), native_sender(queue, c.catalogue))
        if leadership is not None:
            planner.is_leader = leadership.is_leader
        return planner

    def start_planner(self) -> None:
        leadership = Leadership(self.core.engine)
        leadership.try_once()  # a lone planner leads from its first tick
        self.leadership_thread = threading.Thread(target=leadership.run, args=(self.stop_event,),
                                                  name="planner-lease", daemon=True)
        self.leadership_thread.start()
        planner = self.planner(leadership)
        queue, catalogue = self._queue(), self.core.catalogue  # one planner's view: workers would repeat it
        self.collectors.append(ScrapeGauge("broker_queue_messages", "Messages waiting in a provider's queue for a "
                                           "worker", ["provider"], lambda: waiting_messages(queue, catalogue)))
        self.planner_thread = threading.Thread(target=planner.run, args=(self.stop_event, self.wake_event),
                                               name="planner", daemon=True)
        self.planner_thread.start()
        self.schedules_thread = threading.Thread(target=planner.run_schedules, args=(self.stop_event,),
                                                 name="schedules", daemon=True)
        self.schedules_thread.start()
        deliverer = Deliverer(self.core.engine, self.core.settings)  # network calls: a thread and loop of its own
        self.webhook_thread = threading.Thread(target=deliverer.run, args=(self.stop_event,), name="webhooks",
                                               daemon=True)
        self.webhook_thread.start()

    def serve_metrics(self, port: int, host: str) -> None:
        """Serve this process' metrics on ``http://host:port/metrics`` (a planner's or a worker's; the API serves
        its own on its port)."""
        self.metrics_server, _ = start_http_server(port, host, registry=exposition(*self.collectors))

    def api_context(self) -> ApiContext:
        self.context = ApiContext(self.core, wake_planner=self.wake_event.set, collectors=tuple(self.collectors),
                                  limiter=self.shared_limiter, circuits=self.circuits)
        return self.context

    def app(self) -> Any:
        return create_app(self.api_context())

    def stop(self) -> None:
        if self.context is not None:
            self.context.close()
            self.context = None
        if self.metrics_server is not None:
            self.metrics_server.shutdown()
            self.metrics_server.server_close()
            self.metrics_server = None
        self.stop_event.set()
        self.wake_event.set()
        if self.planner_thread is not None:
            self.planner_thread.join(10)
        for thread in (self.webhook_thread, self.schedules_thread, self.leadership_thread):
            if thread is not None:
                thread.join(10)
        worker, queue = self.worker, self.queue
        self.worker = self.worker_process = self.queue = None  # a second stop() has nothing left to do
        if worker is not None:
            worker.stop()  # the WorkerProcess middleware closes the runtime once the threads have stopped
        if queue is not None:
            queue.close()
        self.core.engine.dispose()
