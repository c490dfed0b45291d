"""The planner: one loop that moves every batch forward.

Each tick: retry validations nobody finished, take back expired leases (invariant 2), release work per
provider in priority order (invariant 3), ask workers to move native batch submissions on, and end batches
that are done, expired or cancelled. Schedules fire on a loop of their own (run_schedules).
"""

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from sqlalchemy import Engine, text

from broker.batches import validate_batch
from broker.budget import OVER_CAP, OVER_MONTHLY, WINDING_DOWN, month_params
from broker.catalogue import Catalogue
from broker.core import Core
from broker.dispatch import SendChunk, reclaim_expired_leases, release_and_send
from broker.files import purge_expired
from broker.finalize import claim, fail_open_lines, write_results
from broker.ids import now
from broker.remote_batches import native_work
from broker.schedules.runner import fire_due
from broker.settings import Settings

log = logging.getLogger(__name__)
SendNative = Callable[[str], None]  #: asks a worker to submit, poll and collect a provider's native batches
VALIDATION_GRACE_SECONDS = 5  #: the API validates new batches itself; the planner steps in after this


@dataclass
class Planner:
    core: Core
    send: SendChunk
    sync_native: SendNative = field(default=lambda provider: None)  #: wired to the queue by cli/compose.py

    @property
    def engine(self) -> Engine:
        return self.core.engine

    @property
    def settings(self) -> Settings:
        return self.core.settings

    @property
    def catalogue(self) -> Catalogue:
        return self.core.catalogue

    def tick(self) -> None:
        self._validate_stale()
        for provider in self.catalogue.providers.values():
            reclaim_expired_leases(self.engine, provider, self.settings.max_attempts)
            release_and_send(self.engine, provider, self.settings.lease_seconds, self.send)
            if provider.native_batch is not None and native_work(self.engine, provider.name, time.time()):
                self.sync_native(provider.name)
        self._advance_batches()
        if (n := purge_expired(self.engine, self.core.store)) > 0:
            log.info("deleted %d expired files", n)

    def fire_schedules(self) -> None:
        """Due schedules create their batches (a URL input may take a while to fetch: this runs on its own thread,
        so it never holds up dispatch)."""
        fire_due(self.core)

    def run_schedules(self, stop: threading.Event) -> None:
        while not stop.is_set():
            try:
                self.fire_schedules()
            except Exception:  # the next pass retries; a schedule's own failures are in its last_error
                log.exception("firing schedules failed")
            stop.wait(self.settings.planner_interval)

    def run(self, stop: threading.Event, wake: threading.Event | None = None) -> None:
        """Tick until ``stop`` is set; ``wake`` cuts a sleep short (new work arrived)."""
        while not stop.is_set():
            try:
                self.tick()
            except Exception:  # a failed tick must not end the planner; the next one retries
                log.exception("planner tick failed")
            if wake is not None:
                wake.wait(self.settings.planner_interval)
                wake.clear()
            else:
                stop.wait(self.settings.planner_interval)

    def _validate_stale(self) -> None:
        t = now()
        with self.engine.connect() as conn:
            ids = [r[0] for r in conn.execute(
                text("SELECT id FROM batch WHERE status = 'validating' AND created_at < :grace "
                     "AND (claimed_until IS NULL OR claimed_until < :now)"),
                {"grace": t - VALIDATION_GRACE_SECONDS, "now": t},
            )]
        for batch_id in ids:
            validate_batch(self.core, batch_id)

    def _advance_batches(self) -> None:
        t = now()
        month = month_params(t)
        with self.engine.connect() as conn:
            rows = conn.execute(
                text("SELECT id, status, total, completed, failed, expires_at, claimed_until, "
                     f"{OVER_CAP}, {OVER_MONTHLY} FROM batch "
                     "WHERE status IN ('in_progress', 'cancelling', 'finalizing')"),
                month,
            ).all()
            busy = {r[0] for r in conn.execute(  # batches winding down that still have calls in flight
                text("SELECT DISTINCT batch_id FROM line WHERE status = 'queued' AND lease_until >= :now "
                     f"AND batch_id IN (SELECT id FROM batch WHERE {WINDING_DOWN}) "
                     "UNION SELECT DISTINCT batch_id FROM remote_batch WHERE status != 'ended' "
                     f"AND batch_id IN (SELECT id FROM batch WHERE {WINDING_DOWN})"),
                {"now": t, **month},
            )}
        for batch_id, status, total, done, failed, expires_at, claimed_until, over_budget, over_monthly in rows:
            if status == "in_progress" and done + failed >= total:
                self._end(batch_id, "in_progress", "completed")
            elif status == "in_progress" and expires_at is not None and expires_at <= t:
                self._end(batch_id, "in_progress", "expired")
            elif status == "in_progress" and (over_budget or over_monthly) and batch_id not in busy:
                reason = "budget" if over_budget else "monthly_budget"
                self._end(batch_id, "in_progress", "completed", close_reason=reason)
            elif status == "cancelling" and batch_id not in busy:
                self._end(batch_id, "cancelling", "cancelled")
            elif status == "finalizing" and (claimed_until is None or claimed_until < t):
                self._end(batch_id, "finalizing", "completed")  # a planner died mid-way: redo it

    def _end(self, batch_id: str, status: str, final_status: str, close_reason: str | None = None) -> None:
        """End the batch; lines still open are closed with ``close_reason`` (the final status by default)."""
        if not claim(self.engine, batch_id, status):
            return
        reason = close_reason or (final_status if final_status != "completed" else None)
        if reason is not None:
            fail_open_lines(self.engine, batch_id, reason)
        if final_status == "completed":
            with self.engine.begin() as conn:
                conn.execute(
                    text("UPDATE batch SET status = 'finalizing', finalizing_at = :t WHERE id = :id"),
                    {"t": now(), "id": batch_id},
                )
        write_results(self.engine, self.core.store, batch_id, final_status)


