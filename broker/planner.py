"""The planner: one loop that moves every batch forward, by calling the modules that own each step.

Each tick: validations nobody finished (broker/intake.py); per provider, expired leases taken back and work
released in priority order (broker/dispatch.py, invariants 2 and 3), and a worker asked to move native batch
submissions on (broker/remote_batches.py); then batches that are done, expired, past a budget or cancelled are
ended (broker/finalize.py); orphaned temporary files are swept at start and every SWEEP_INTERVAL_SECONDS.
Schedules fire on a loop of their own (run_schedules). Any number of planners may run: only the one that
``is_leader`` (broker/leadership.py) ticks and fires schedules; the others wait to take over.
"""

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from broker import metrics
from broker.core import Core
from broker.dispatch import SendChunk, reclaim_expired_leases, release_and_send
from broker.files import purge_expired
from broker.finalize import advance_batches
from broker.intake import validate_stale
from broker.remote_batches import native_work
from broker.schedules.runner import fire_due

log = logging.getLogger(__name__)
SWEEP_INTERVAL_SECONDS = 600.0  #: orphaned temporary files are looked for at start and this often
SendNative = Callable[[str], None]  #: asks a worker to submit, poll and collect a provider's native batches


@dataclass
class Planner:
    core: Core
    send: SendChunk
    sync_native: SendNative = field(default=lambda provider: None)  #: wired to the queue by cli/compose.py
    is_leader: Callable[[], bool] = field(default=lambda: True)  #: whether this planner may act now
    _swept_at: float | None = None  #: when orphaned temporary files were last swept (monotonic)

    def tick(self) -> None:
        """One pass over every step; each step is safe to run from several planners at once."""
        core = self.core
        validate_stale(core)
        for provider in core.catalogue.providers.values():
            reclaim_expired_leases(core.engine, provider, core.settings.max_attempts)
            release_and_send(core.engine, provider, core.settings.lease_seconds, self.send)
            if provider.native_batch is not None and native_work(core.engine, provider.name, time.time()):
                self.sync_native(provider.name)
        advance_batches(core)
        if (n := purge_expired(core.engine, core.store)) > 0:
            log.info("deleted %d expired files", n)
        if self._swept_at is None or time.monotonic() - self._swept_at >= SWEEP_INTERVAL_SECONDS:
            self._swept_at = time.monotonic()
            if (n := core.store.sweep_orphans()) > 0:
                log.warning("deleted %d orphaned temporary files (their writers died)", n)

    def fire_schedules(self) -> None:
        """Due schedules create their batches (a URL input may take a while to fetch: this runs on its own thread,
        so it never holds up dispatch)."""
        fire_due(self.core)

    def run_schedules(self, stop: threading.Event) -> None:
        while not stop.is_set():
            try:
                if self.is_leader():
                    self.fire_schedules()
            except Exception:  # the next pass retries; a schedule's own failures are in its last_error
                log.exception("firing schedules failed")
            stop.wait(self.core.settings.planner_interval)

    def run(self, stop: threading.Event, wake: threading.Event | None = None) -> None:
        """Tick until ``stop`` is set; ``wake`` cuts a sleep short (new work arrived)."""
        while not stop.is_set():
            try:
                if self.is_leader():
                    with metrics.planner_tick():
                        self.tick()
            except Exception:  # a failed tick must not end the planner; the next one retries
                log.exception("planner tick failed")
            if wake is not None:
                wake.wait(self.core.settings.planner_interval)
                wake.clear()
            else:
                stop.wait(self.core.settings.planner_interval)
