"""The leases a worker process holds: kept alive while their lines run, and known lost the moment they move on.

A line's lease is short (``lease_seconds``) and renewed every :data:`RENEW_FRACTION` of it while this process
holds the line (running, waiting on a limit, or waiting to be stored), so a dead worker's lines run again within
one lease while a live one keeps its lines however long their calls take. A line is sent upstream only while its
known lease has a margin left (:data:`SEND_MARGIN_SECONDS`, or one renewal interval if shorter): a line taken
back (the process stalled, or the database was away longer than a lease) or received after its lease ended (a
message redelivered late) is never sent again, so the upstream never bills a line twice.
"""

import asyncio
import logging
import time

from sqlalchemy import Engine

from broker.dispatch import LeasedLine, renew_leases

log = logging.getLogger(__name__)
RENEW_FRACTION = 0.25  #: leases are renewed every lease_seconds x this
SEND_MARGIN_SECONDS = 1.0  #: a line whose known lease ends sooner than this (or a renewal's interval) is not sent


class LeaseKeeper:
    def __init__(self, engine: Engine, lease_seconds: float) -> None:
        self.engine, self.lease_seconds = engine, lease_seconds
        self.margin = min(SEND_MARGIN_SECONDS, lease_seconds * RENEW_FRACTION)
        self._held: dict[int, tuple[int, float]] = {}  #: line id -> (attempts as leased, known lease end)
        #: held lines whose call has ended, their outcome on its way to the database: a renewal that misses one
        #: found it stored, not lost
        self._answered: set[int] = set()

    def take(self, line: LeasedLine) -> bool:
        """Hold a line just received; False (and not held) when its lease has already ended or nearly so."""
        until = line.lease_until or time.time() + self.lease_seconds  # a message from before leases were sent
        if until - self.margin <= time.time():
            return False
        self._held[line.id] = (line.attempts, until)
        self._answered.discard(line.id)  # a new lease on a line whose last one ended here
        return True

    def holds(self, line_id: int) -> bool:
        """Whether the line is still surely ours to send upstream."""
        held = self._held.get(line_id)
        return held is not None and held[1] - self.margin > time.time()

    def answered(self, leases: list[tuple[int, int]]) -> None:
        """Note leases, ``(line id, attempts)``, whose call has ended: held until :meth:`drop`, once stored."""
        self._answered.update(line_id for line_id, _ in leases)

    def drop(self, leases: list[tuple[int, int]]) -> None:
        """Stop holding leases, ``(line id, attempts)``, whose outcome is stored (or that were handed back); a line
        leased here again since (a retry) stays held under its new lease."""
        for line_id, attempts in leases:
            if (held := self._held.get(line_id)) is not None and held[0] == attempts:
                del self._held[line_id]
                self._answered.discard(line_id)

    async def renew(self) -> None:
        """Extend every held lease; forget those that moved on."""
        if not self._held:
            return
        leases = [(line_id, attempts) for line_id, (attempts, _) in self._held.items()]
        until = time.time() + self.lease_seconds
        renewed = await asyncio.to_thread(renew_leases, self.engine, leases, until)
        lost = 0
        for line_id, attempts in leases:
            if (held := self._held.get(line_id)) is None or held[0] != attempts:
                continue  # dropped meanwhile, or leased here again (a retry) after the renewal read it
            if line_id in renewed:
                self._held[line_id] = (attempts, until)
            else:
                del self._held[line_id]
                if line_id not in self._answered:  # else its outcome was stored while the renewal ran
                    lost += 1
                self._answered.discard(line_id)
        if lost:
            log.warning("%d leases moved on before their lines ended here; those lines are not sent again", lost)

    async def keep_alive(self) -> None:
        """Renew until cancelled; a failed renewal is tried again at the next turn (leases still run out)."""
        while True:
            await asyncio.sleep(self.lease_seconds * RENEW_FRACTION)
            try:
                await self.renew()
            except Exception:
                log.exception("renewing %d leases failed", len(self._held))
