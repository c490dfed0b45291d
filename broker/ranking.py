"""Who gets the provider's free capacity: priority class, deadline slack, then fairness between projects.

Tiers are priority classes (lower runs first), after escalation: a batch that will miss its window at its
observed rate is moved one class up. Within a tier the free slots are dealt round-robin between projects, so
one project's million-line batch cannot starve another project's small batch of the same priority; within a
project, older batches go first. ``background`` is just the last tier: it gets what nobody above wanted.
"""

from collections import OrderedDict, deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass

ESCALATION_STEP = 10  #: classes are 10 apart (urgent 0 ... background 40); escalation moves one class up
NO_HISTORY_ESCALATION = 0.1  #: with no progress yet, escalate when less than this share of the window is left


@dataclass(frozen=True, slots=True)
class ActiveBatch:
    id: str
    project_id: str
    endpoint: str
    priority: int
    created_at: int
    expires_at: int | None
    in_progress_at: int | None
    remaining: int
    done: int

    def at_risk(self, now: float) -> bool:
        """True when the batch will not finish inside its window at the pace it has had so far."""
        if self.expires_at is None or self.remaining <= 0:
            return False
        time_left = self.expires_at - now
        started = self.in_progress_at or self.created_at
        if self.done == 0:
            window = max(1.0, self.expires_at - started)
            return time_left < window * NO_HISTORY_ESCALATION
        seconds_per_line = max(0.0, now - started) / self.done
        return time_left < self.remaining * seconds_per_line

    def effective_priority(self, now: float) -> int:
        return max(0, self.priority - ESCALATION_STEP) if self.at_risk(now) else self.priority


def tiers(batches: Iterable[ActiveBatch], now: float) -> list[list[ActiveBatch]]:
    """Batches grouped by effective priority, best first; oldest first inside a tier."""
    grouped: dict[int, list[ActiveBatch]] = {}
    for batch in batches:
        grouped.setdefault(batch.effective_priority(now), []).append(batch)
    return [sorted(grouped[p], key=lambda b: (b.created_at, b.id)) for p in sorted(grouped)]


def deal(free: int, tier: list[ActiveBatch], take: Callable[[ActiveBatch, int], int]) -> int:
    """Give up to ``free`` slots to the tier's projects in turn; ``take(batch, n)`` uses at most n and says how many.

    Returns the slots left over.
    """
    queues: OrderedDict[str, deque[ActiveBatch]] = OrderedDict()
    for batch in tier:
        queues.setdefault(batch.project_id, deque()).append(batch)
    while free > 0 and queues:
        share = max(1, free // len(queues))
        for project in list(queues):
            want = min(share, free)
            batches = queues[project]
            while want > 0 and batches:
                got = take(batches[0], want)
                free, want = free - got, want - got
                if want > 0:  # this batch has nothing more to run now: the project's next one goes on
                    batches.popleft()
            if not batches:
                del queues[project]
            if free <= 0:
                break
    return free
