"""One provider's lines in a worker process: each upstream call is a task of its own, and the slot it frees is
refilled the moment it ends, not when the slowest line of its message does.

Outcomes of ended calls are stored, and the provider's next ranked lines leased (broker/dispatch.py), by a single
flusher per provider: a store starts once :data:`STORE_BATCH_LINES` outcomes wait or the first has waited
:data:`STORE_WAIT_SECONDS`, and outcomes of calls ending during a store go in the next one, so a busy provider
stores many lines per transaction while a slot stays idle for a few milliseconds at most. The lines leased go out as
queue messages (any worker may take them). On close, calls still running are cancelled and their lines handed
back for another worker to run at once; outcomes already in are stored first.
"""

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable

from sqlalchemy import Engine

from broker.catalogue import ProviderConfig
from broker.dispatch import Chunk, finish_and_release, give_back, send_all
from broker.results import Outcome
from workers.execute import Call
from workers.leases import LeaseKeeper

log = logging.getLogger(__name__)
STORE_BATCH_LINES = 32  #: a store starts once this many outcomes wait...
STORE_WAIT_SECONDS = 0.005  #: ...or once the first of them has waited this long (slots idle briefly, stores stay few)
STORE_RETRY_SECONDS = 1.0  #: wait before storing again after the database refused a store
CLOSE_STORE_ATTEMPTS = 3  #: stores tried at close before the outcomes are left to the lease's expiry


class ProviderFlow:
    def __init__(self, engine: Engine, provider: ProviderConfig, leases: LeaseKeeper,
                 send: Callable[[Chunk], None], after_store: Callable[[], None] = lambda: None) -> None:
        self.engine, self.provider, self.leases = engine, provider, leases
        self.lease_seconds = leases.lease_seconds
        self.send = send
        self.after_store = after_store  #: called on the loop after each store (provider-state reports)
        self._outcomes: list[Outcome] = []
        #: running call -> its lines' (id, attempts) as leased
        self._calls: dict[asyncio.Task[list[Outcome]], list[tuple[int, int]]] = {}
        self._flusher: asyncio.Task[None] | None = None
        self._closing = False
        self._waiting_since = 0.0  #: when the oldest outcome waiting to be stored came in (monotonic)
        self._enough = asyncio.Event()  #: set when STORE_BATCH_LINES outcomes wait

    def start(self, calls: list[Call]) -> None:
        """Run each ``(call, its lines' (id, attempts))`` as a task on the running loop."""
        for call, leases in calls:
            task = asyncio.ensure_future(call)
            self._calls[task] = leases
            task.add_done_callback(self._ended)

    def _ended(self, task: asyncio.Task[list[Outcome]]) -> None:
        self._calls.pop(task, None)
        if task.cancelled():
            return
        if (exc := task.exception()) is not None:  # calls catch their own errors; the lease takes the line back
            log.error("provider %s: a call failed inside the broker", self.provider.name, exc_info=exc)
            return
        if not self._outcomes:
            self._waiting_since = time.monotonic()
        self._outcomes.extend(task.result())
        if len(self._outcomes) >= STORE_BATCH_LINES:
            self._enough.set()
        if not self._closing and (self._flusher is None or self._flusher.done()):
            self._flusher = asyncio.ensure_future(self._flush())

    async def _flush(self) -> None:
        while self._outcomes and not self._closing:
            deadline = self._waiting_since + STORE_WAIT_SECONDS
            while len(self._outcomes) < STORE_BATCH_LINES and (wait := deadline - time.monotonic()) > 0:
                self._enough.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._enough.wait(), wait)
            if self._closing:  # aclose stores what is left, without leasing more
                break
            outcomes, self._outcomes = self._outcomes, []
            try:
                chunks = await asyncio.to_thread(finish_and_release, self.engine, self.provider, outcomes,
                                                 self.lease_seconds)
            except Exception:  # the database is away: keep the outcomes and store them again shortly
                log.exception("provider %s: storing %d outcomes failed; retrying", self.provider.name, len(outcomes))
                self._outcomes[:0] = outcomes
                await asyncio.sleep(STORE_RETRY_SECONDS)
                continue
            self.leases.drop([o.line_id for o in outcomes])
            send_all(chunks, self.send)
            self.after_store()

    async def aclose(self) -> None:
        """Cancel running calls and hand their lines back; store every outcome already in (nothing released)."""
        self._closing = True
        running = dict(self._calls)
        for task in running:
            task.cancel()
        await asyncio.gather(*running, return_exceptions=True)
        if self._flusher is not None:
            await asyncio.gather(self._flusher, return_exceptions=True)
        for attempt in range(CLOSE_STORE_ATTEMPTS):
            if not self._outcomes:
                break
            try:
                await asyncio.to_thread(finish_and_release, self.engine, self.provider, self._outcomes,
                                        self.lease_seconds, release_next=False)
                self._outcomes = []
            except Exception:
                log.exception("provider %s: storing outcomes at close failed (attempt %d)", self.provider.name,
                              attempt + 1)
        unfinished = [lease for leases in running.values() for lease in leases]
        if unfinished:
            await asyncio.to_thread(give_back, self.engine, unfinished)
            self.leases.drop([line_id for line_id, _ in unfinished])
