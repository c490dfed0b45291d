"""Wiring the layers into processes: embedded (everything in one) or one role per process."""

import logging
import threading
from dataclasses import dataclass, field
from typing import Any

import dramatiq
from sqlalchemy import Engine

from api.app import create_app
from api.context import ApiContext
from broker.catalogue import Catalogue, demo_catalogue, load_catalogue
from broker.db import make_engine
from broker.files import FileStore
from broker.migrate import upgrade
from broker.planner import Planner
from broker.settings import Settings
from broker.webhooks.delivery import Deliverer
from workers.queue import install, make_broker, native_sender, sender, start_worker
from workers.runtime import WorkerRuntime

log = logging.getLogger(__name__)


@dataclass
class Core:
    """What every broker process shares: settings, database (migrated), catalogue and file store."""

    settings: Settings
    engine: Engine
    catalogue: Catalogue
    store: FileStore

    @classmethod
    def open(cls, settings: Settings, catalogue: Catalogue | None = None, migrate: bool = True) -> "Core":
        engine = make_engine(settings.database_url)
        if migrate:
            upgrade(engine)
        if catalogue is None:
            catalogue = (load_catalogue(settings.providers_file) if settings.providers_file
                         else demo_catalogue(f"http://127.0.0.1:{settings.simulator_port}/v1"))
        return cls(settings, engine, catalogue, FileStore(settings.files_dir))


@dataclass
class Processes:
    """The background parts of a broker process, started as its role needs them, stopped in reverse."""

    core: Core
    queue: dramatiq.Broker | None = None
    worker: Any = None
    runtime: WorkerRuntime | None = None
    stop_event: threading.Event = field(default_factory=threading.Event)
    wake_event: threading.Event = field(default_factory=threading.Event)
    planner_thread: threading.Thread | None = None
    webhook_thread: threading.Thread | None = None
    schedules_thread: threading.Thread | None = None

    def _queue(self) -> dramatiq.Broker:
        if self.queue is None:
            self.queue = make_broker(self.core.settings.redis_url, self.core.catalogue)
        return self.queue

    def start_workers(self, threads: int) -> None:
        queue = self._queue()
        self.runtime = WorkerRuntime(self.core.engine, self.core.settings, self.core.catalogue,
                                     sender(queue, self.core.catalogue))
        install(self.runtime)
        self.worker = start_worker(queue, threads)

    def planner(self) -> Planner:
        c = self.core
        queue = self._queue()
        return Planner(c.engine, c.settings, c.catalogue, c.store, sender(queue, c.catalogue),
                       native_sender(queue, c.catalogue))

    def start_planner(self) -> None:
        planner = self.planner()
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

    def api_context(self) -> ApiContext:
        c = self.core
        return ApiContext(c.settings, c.engine, c.catalogue, c.store, wake_planner=self.wake_event.set)

    def app(self) -> Any:
        return create_app(self.api_context())

    def stop(self) -> None:
        self.stop_event.set()
        self.wake_event.set()
        if self.planner_thread is not None:
            self.planner_thread.join(10)
        for thread in (self.webhook_thread, self.schedules_thread):
            if thread is not None:
                thread.join(10)
        worker, runtime, queue = self.worker, self.runtime, self.queue
        self.worker = self.runtime = self.queue = None  # a second stop() has nothing left to do
        if worker is not None:
            if runtime is not None:
                from dramatiq.asyncio import get_event_loop_thread

                loop_thread = get_event_loop_thread()
                if loop_thread is not None:
                    loop_thread.run_coroutine(runtime.aclose())
            worker.stop()
        if queue is not None:
            queue.close()
        self.core.engine.dispose()
