"""Leadership among planners (invariant 9): any number may run, the one holding the lease acts.

The lease is a row of ``leader_lease`` (SQL: the one store every deployment has, SQLite embedded or PostgreSQL),
taken or renewed by a compare-and-set ``UPDATE``: it goes to a caller that already holds it or finds it lapsed.
The leader renews it every :data:`RENEW_EVERY_SECONDS` from a thread of its own, so a long tick never loses it;
followers try as often, so one takes over within :data:`LEASE_SECONDS` + :data:`RENEW_EVERY_SECONDS` of a leader's
death. A leader counts itself leader only until its lease would lapse as seen from its last successful renewal
(minus :data:`SAFETY_SECONDS` for clock drift), so it stops acting before anyone else may start. Each step the
planner takes is also guarded on its own (claims, compare-and-set, leases), so even a leader that stalled past
its lease never does a step twice.
"""

import logging
import os
import socket
import threading
import time
from dataclasses import dataclass, field

from sqlalchemy import Engine, text

from broker.ids import new_id

log = logging.getLogger(__name__)
LEASE_SECONDS = 10.0  #: a leader that stopped renewing loses the lease this long after its last renewal
RENEW_EVERY_SECONDS = 2.0  #: how often the leader renews, and a follower tries to take over
SAFETY_SECONDS = 2.0  #: a leader stops acting this long before its lease could lapse for the others


def take_or_renew(engine: Engine, name: str, holder: str, seconds: float = LEASE_SECONDS) -> bool:
    """Hold ``name``'s lease for ``seconds`` from now if we hold it already or it has lapsed; True if we do."""
    t = time.time()
    with engine.begin() as conn:
        return conn.execute(
            text("UPDATE leader_lease SET holder = :h, until = :until "
                 "WHERE name = :n AND (holder = :h OR holder IS NULL OR until < :now)"),
            {"h": holder, "until": t + seconds, "n": name, "now": t},
        ).rowcount == 1


def give_up(engine: Engine, name: str, holder: str) -> None:
    """Let the lease go at once (a clean stop): a follower takes over at its next try."""
    with engine.begin() as conn:
        conn.execute(text("UPDATE leader_lease SET holder = NULL, until = 0 WHERE name = :n AND holder = :h"),
                     {"n": name, "h": holder})


@dataclass
class Leadership:
    """This process's bid for ``name``'s lease, kept up by :meth:`run` (a thread of its own)."""

    engine: Engine
    name: str = "planner"
    holder: str = field(default_factory=lambda: f"{socket.gethostname()}:{os.getpid()}:{new_id('p')[-8:]}")
    _valid_until: float = 0.0  #: monotonic time until which we may act as leader
    leading: threading.Event = field(default_factory=threading.Event)  #: set while we lead

    def is_leader(self) -> bool:
        return self.leading.is_set() and time.monotonic() < self._valid_until

    def try_once(self) -> bool:
        started = time.monotonic()
        try:
            held = take_or_renew(self.engine, self.name, self.holder)
        except Exception:  # the database is away: we cannot prove we lead, so we do not
            log.warning("planner lease: renewal failed", exc_info=True)
            held = False
        was = self.leading.is_set()
        if held:
            self._valid_until = started + LEASE_SECONDS - SAFETY_SECONDS
            self.leading.set()
        else:
            self.leading.clear()
        if held != was:
            log.info("planner %s %s", self.holder, "leads" if held else "no longer leads (another planner does)")
        return held

    def run(self, stop: threading.Event) -> None:
        """Keep bidding until ``stop`` is set; then let the lease go if we held it."""
        while not stop.wait(RENEW_EVERY_SECONDS):
            self.try_once()
        if self.leading.is_set():
            self.leading.clear()
            give_up(self.engine, self.name, self.holder)
