"""Claims on a batch's validation or ending, held alive by their holder (invariant 9: liveness, not long timeouts).

A process that validates or ends a batch claims it for :data:`CLAIM_SECONDS` and, while it works, renews the claim
every :data:`RENEW_EVERY_SECONDS` from a thread of its own, so a long validation keeps its claim while a holder
that died loses it within :data:`CLAIM_SECONDS` and another process takes the step over.
"""

import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import Engine, text

from broker.ids import now

log = logging.getLogger(__name__)
CLAIM_SECONDS = 10  #: a claim its holder stopped renewing lapses this long after the last renewal
RENEW_EVERY_SECONDS = 3.0  #: how often a working holder renews its claim
_WORKING = "('validating', 'in_progress', 'cancelling', 'finalizing')"  #: statuses a claimed step moves through


def claim(engine: Engine, batch_id: str, status: str) -> bool:
    """Take the batch's step (it has ``status``) unless a live holder has it; True when we hold it now."""
    t = now()
    with engine.begin() as conn:
        return conn.execute(
            text("UPDATE batch SET claimed_until = :until WHERE id = :id AND status = :status "
                 "AND (claimed_until IS NULL OR claimed_until < :now)"),
            {"until": t + CLAIM_SECONDS, "id": batch_id, "status": status, "now": t},
        ).rowcount == 1


@contextmanager
def kept_alive(engine: Engine, batch_id: str) -> Iterator[None]:
    """Renew the batch's claim while the block runs (the step clears the claim itself when it ends)."""
    stop = threading.Event()

    def renew() -> None:
        while not stop.wait(RENEW_EVERY_SECONDS):
            try:
                with engine.begin() as conn:
                    conn.execute(text(f"UPDATE batch SET claimed_until = :until WHERE id = :id "
                                      f"AND claimed_until IS NOT NULL AND status IN {_WORKING}"),
                                 {"until": now() + CLAIM_SECONDS, "id": batch_id})
            except Exception:  # a busy database: the next turn tries again; the claim lapses only if all fail
                log.warning("renewing the claim on batch %s failed", batch_id, exc_info=True)

    renewer = threading.Thread(target=renew, name=f"claim-{batch_id}", daemon=True)
    renewer.start()
    try:
        yield
    finally:
        stop.set()
        renewer.join()
