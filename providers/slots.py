"""An API process' concurrency slots for interactive calls (rows of ``interactive_call``, broker/capacity.py).

A call is admitted in SQL, ahead of batch lines, waiting until its deadline at most; when plenty of slots are free
and no call waits, the same query takes :data:`SPARE_SLOTS` more for the process' next calls (a burst pays one query
per few calls, not one per call). When a call ends its slot is kept by the process for :data:`IDLE_GRANT_SECONDS`:
the next call to the same provider takes it without a query, so steady traffic costs no admission query per call,
and neither does a burst as high as one seen within that time (a grant shorter than the gaps a loaded machine puts
between calls made every burst pay a query per slot); if calls of this process wait, the first in line (rank, then
age) takes it. A slot idle longer is freed. Batch release leases no line into a slot kept, so batch work waits that
long at most for slots interactive traffic stopped using.

Freed slots and the calls' usage are written together, off the request path, every :data:`FLUSH_SECONDS`: a process
that crashes loses the usage of the calls answered in its last :data:`FLUSH_SECONDS` (while the database is away,
of every call answered since), and its slots count until their lease ends. A process that stops writes them all
(:meth:`Slots.flush`).
"""

import asyncio
import bisect
import contextlib
import logging
import time

from sqlalchemy import Engine

from broker.capacity import try_admit
from broker.catalogue import ProviderConfig
from broker.errors import ProviderBusy
from broker.ids import new_id
from broker.interactive import KeyedCall, end, renew
from broker.usage import Call

log = logging.getLogger(__name__)
POLL_SECONDS = 0.01  #: a waiting call looks for a free slot this often (at once when a call of this process ends)
LEASE_SECONDS = 30.0  #: a slot stops counting this long after its process last renewed it (a dead API process)
RENEW_SECONDS = 10.0  #: how often a process renews its slots
SPARE_SLOTS = 4  #: an admission query takes this many more slots when plenty are free (the next calls of a burst)
IDLE_GRANT_SECONDS = 0.5  #: an ended call's slot waits this long for the process' next call before it is freed
FLUSH_SECONDS = 0.1  #: freed slots and calls' usage are written together this often (what a crash may lose)
RETRY_SECONDS = 1.0  #: wait before writing again after the database refused


class Slots:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._held: set[str] = set()  #: slots of running calls and idle grants
        self._idle: dict[str, list[tuple[str, float]]] = {}  #: provider -> (slot, idle since), newest last
        #: provider -> this process' calls waiting for a slot, (rank, created, slot), first in line first
        self._waiting: dict[str, list[tuple[int, float, str]]] = {}
        self._freed = asyncio.Event()
        self._renewed_at = time.monotonic()
        self._free: list[str] = []  #: slots to free in SQL
        self._usage: list[KeyedCall] = []  #: (project, key, call) to account
        self._writer: asyncio.Future[None] | None = None

    async def admit(self, provider: ProviderConfig, project_id: str, rank: int, deadline: float) -> str:
        """A slot of ``provider`` for a call (its id): an idle grant of this process, else one admitted in SQL,
        waiting until ``deadline`` at most (then :class:`ProviderBusy`)."""
        queue = self._waiting.setdefault(provider.name, [])
        if (idle := self._idle.get(provider.name)) and not queue:
            return idle.pop()[0]
        slot, created = new_id("icall"), time.time()
        admitted = await asyncio.to_thread(
            try_admit, self.engine, provider, slot, project_id=project_id, rank=rank, created_at=created,
            lease_until=created + LEASE_SECONDS, at=created, new=True,
            spares=[new_id("icall") for _ in range(SPARE_SLOTS)])
        self._held.update(admitted or [slot])
        now = time.monotonic()
        self._idle.setdefault(provider.name, []).extend((spare, now) for spare in admitted[1:])
        if admitted:
            self._write()  # keeps the slot renewed while it is held
            return slot
        place = (rank, created, slot)
        bisect.insort(queue, place)
        try:
            while not admitted:
                left = deadline - time.monotonic()
                if left <= 0:
                    self._held.discard(slot)
                    self._write(free=slot)
                    raise ProviderBusy(f"{provider.name} has no capacity free for this call; try again shortly.",
                                       retry_after=1.0)
                self._freed.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._freed.wait(), min(POLL_SECONDS, left))
                # a call of this process ended meanwhile: its slot goes to the first of ours in line
                if (idle := self._idle.get(provider.name)) and queue[0] == place:
                    self._held.discard(slot)
                    self._write(free=slot)
                    return idle.pop()[0]
                admitted = await asyncio.to_thread(
                    try_admit, self.engine, provider, slot, project_id=project_id, rank=rank, created_at=created,
                    lease_until=created + LEASE_SECONDS, at=time.time(), new=False)
        finally:
            queue.remove(place)
            self._freed.set()  # the next in line may take an idle grant now
        self._write()  # keeps the slot renewed while it is held
        return slot

    def release(self, provider: str, slot: str, project_id: str = "", call: Call | None = None,
                key_id: str | None = None) -> None:
        """The call is over: its slot becomes an idle grant, ``call`` (what it used) is accounted to its project
        and to the key that made it."""
        self._idle.setdefault(provider, []).append((slot, time.monotonic()))
        self._freed.set()
        if call is not None:
            self._usage.append((project_id, key_id, call))
        self._write()

    def _write(self, free: str | None = None) -> None:
        if free is not None:
            self._free.append(free)
        if self._writer is None or self._writer.done():
            self._writer = asyncio.ensure_future(self._writes())

    def _expire_idle(self) -> None:
        old = time.monotonic() - IDLE_GRANT_SECONDS
        for provider, idle in self._idle.items():
            expired = [slot for slot, since in idle if since < old]
            if expired:
                self._idle[provider] = [(slot, since) for slot, since in idle if since >= old]
                self._held.difference_update(expired)
                self._free.extend(expired)

    def flush(self) -> None:
        """The process stops (its loop is over): free every slot it holds and write the usage not yet written."""
        free, usage = [*self._free, *self._held], self._usage
        self._free, self._usage, self._held, self._idle = [], [], set(), {}
        if free or usage:
            end(self.engine, free, usage, time.time())

    async def _writes(self) -> None:
        """Write freed slots and usage, free idle grants as they expire and renew the slots held, while any are."""
        while True:
            await asyncio.sleep(FLUSH_SECONDS)
            self._expire_idle()
            free, usage, self._free, self._usage = self._free, self._usage, [], []
            renewing = time.monotonic() - self._renewed_at > RENEW_SECONDS
            if free or usage:
                try:
                    await asyncio.to_thread(end, self.engine, free, usage, time.time())
                except Exception:  # the database is away: keep them and write them again shortly
                    log.exception("writing %d freed slots and %d calls' usage failed; retrying", len(free), len(usage))
                    self._free[:0], self._usage[:0] = free, usage
                    await asyncio.sleep(RETRY_SECONDS)
            if renewing:
                self._renewed_at = time.monotonic()
                await asyncio.to_thread(renew, self.engine, sorted(self._held), time.time() + LEASE_SECONDS,
                                        time.time())
            if not self._held and not self._free and not self._usage:  # held: running calls keep being renewed
                return
