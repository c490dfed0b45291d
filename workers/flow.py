"""One provider's lines in a worker process: each upstream call is a task of its own, and the slot it frees is
refilled the moment it ends, not when the slowest line of its message does.

An answer is persisted as soon as it arrives: a single storer per provider writes every outcome waiting, in its own
transaction that takes no lock but the rows it writes (broker/results.py), and outcomes arriving during a store go
in the next one at once. So an answer the upstream gave, and billed, dies unstored with a crashed worker only if it
arrived within about two stores' time of the crash. Right after each store, in the same thread, the provider's next
ranked lines are leased into the freed slots (broker/dispatch.py), in a transaction of its own under the provider's
release lock; the lines leased go out as queue messages (any worker may take them). The two run one after the other,
not side by side: on SQLite they only queued for its one write lock, and its busy handler sleeps whole milliseconds
(a store took ~12 ms for ~1 ms of work, and 15 % of a 512-call window stood empty waiting for refills). On close,
calls still running are cancelled and their lines handed back for another worker to run at once; outcomes already
in are stored first.
"""

import asyncio
import logging
import time
from collections.abc import Callable

from sqlalchemy import Engine

from broker.catalogue import ProviderConfig
from broker.dispatch import Chunk, give_back, release_and_send
from broker.results import Outcome, Stored, store_outcomes
from workers.execute import Call
from workers.leases import LeaseKeeper

log = logging.getLogger(__name__)
STORE_RETRY_SECONDS = 1.0  #: wait before storing again after the database refused a store
CLOSE_STORE_ATTEMPTS = 3  #: stores tried at close before the outcomes are left to the lease's expiry


class ProviderFlow:
    def __init__(self, engine: Engine, provider: ProviderConfig, leases: LeaseKeeper,
                 send: Callable[[Chunk], None], after_store: Callable[[], None] = lambda: None,
                 batches_done: Callable[[], None] = lambda: None) -> None:
        self.engine, self.provider, self.leases = engine, provider, leases
        self.lease_seconds = leases.lease_seconds
        self.send = send
        self.after_store = after_store  #: called on the loop after each store (provider-state reports)
        self.batches_done = batches_done  #: called when a store ended a batch's last line (wakes a planner)
        self._outcomes: list[Outcome] = []  #: answered, waiting to be stored
        self._ended_leases: list[tuple[int, int]] = []  #: leases of the calls those outcomes came from
        #: running call -> its lines' (id, attempts) as leased
        self._calls: dict[asyncio.Task[list[Outcome]], list[tuple[int, int]]] = {}
        self._storer: asyncio.Task[None] | None = None
        self._closing = False

    def start(self, calls: list[Call]) -> None:
        """Run each ``(call, its lines' (id, attempts))`` as a task on the running loop."""
        for call, leases in calls:
            task = asyncio.ensure_future(call)
            self._calls[task] = leases
            task.add_done_callback(self._ended)

    def _ended(self, task: asyncio.Task[list[Outcome]]) -> None:
        leases = self._calls.pop(task, [])
        if task.cancelled():
            return
        if (exc := task.exception()) is not None:  # calls catch their own errors; the lease takes the line back
            log.error("provider %s: a call failed inside the broker", self.provider.name, exc_info=exc)
            self.leases.drop(leases)  # so no longer renewed: it runs out, and the planner takes the line back
            return
        self._outcomes.extend(task.result())
        self._ended_leases.extend(leases)
        self.leases.answered(leases)
        if not self._closing and (self._storer is None or self._storer.done()):
            self._storer = asyncio.ensure_future(self._store())

    async def _store(self) -> None:
        while (self._outcomes or self._ended_leases) and not self._closing:  # aclose stores what is left itself
            outcomes, self._outcomes = self._outcomes, []
            ended, self._ended_leases = self._ended_leases, []
            try:
                stored = await asyncio.to_thread(self._store_then_release, outcomes)
            except Exception:  # the database is away: keep the outcomes and store them again shortly
                log.exception("provider %s: storing %d outcomes failed; retrying", self.provider.name, len(outcomes))
                self._outcomes[:0], self._ended_leases[:0] = outcomes, ended
                await asyncio.sleep(STORE_RETRY_SECONDS)
                continue
            self.leases.drop(ended)
            if stored.batches_done:
                self.batches_done()
            self.after_store()

    def _store_then_release(self, outcomes: list[Outcome]) -> Stored:
        """Store the outcomes (none: calls whose lease moved on before they were sent), then lease the provider's
        next lines into the slots they freed; a failed release is left to the planner's next tick."""
        stored = store_outcomes(self.engine, outcomes, time.time()) if outcomes else Stored(0)
        if not self._closing:
            try:
                release_and_send(self.engine, self.provider, self.lease_seconds, self.send)
            except Exception:
                log.exception("provider %s: leasing the next lines failed", self.provider.name)
        return stored

    async def aclose(self) -> None:
        """Cancel running calls and hand their lines back; store every outcome already in (nothing released)."""
        self._closing = True
        running = dict(self._calls)
        for task in running:
            task.cancel()
        await asyncio.gather(*running, return_exceptions=True)
        if self._storer is not None:
            await asyncio.gather(self._storer, return_exceptions=True)
        for attempt in range(CLOSE_STORE_ATTEMPTS):
            if not self._outcomes:
                break
            try:
                await asyncio.to_thread(store_outcomes, self.engine, self._outcomes, time.time())
                self._outcomes = []
            except Exception:
                log.exception("provider %s: storing outcomes at close failed (attempt %d)", self.provider.name,
                              attempt + 1)
        unfinished = [lease for leases in running.values() for lease in leases]
        if unfinished:
            await asyncio.to_thread(give_back, self.engine, unfinished)
            self.leases.drop(unfinished)
