"""Who gets the provider's free capacity: priority class, deadline slack, then fairness between projects.

Tiers are priority classes (lower runs first), after escalation: a batch that will miss its window at its
observed rate is moved one class up. Within a tier the free slots are dealt round-robin between projects, so
one project's million-line batch cannot starve another project's small batch of the same priority; within a
project, older batches go first. ``background`` is just the last tier: it gets what nobody above wanted.
"""

import heapq
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
    in_flight: int = 0  #: upstream calls of this batch running now

    def finish_at(self, now: float) -> float | None:
        """When the remaining lines will have ended at the pace the batch has had so far; None before any ended."""
        if self.done == 0:
            return None
        started = self.in_progress_at or self.created_at
        seconds_per_line = max(0.0, now - started) / self.done
        return now + self.remaining * seconds_per_line

    def at_risk(self, now: float) -> bool:
        """True when the batch will not finish inside its window at the pace it has had so far."""
        if self.expires_at is None or self.remaining <= 0:
            return False
        finish = self.finish_at(now)
        if finish is None:
            window = max(1.0, self.expires_at - (self.in_progress_at or self.created_at))
            return self.expires_at - now < window * NO_HISTORY_ESCALATION
        return finish > self.expires_at

    def effective_priority(self, now: float) -> int:
        return max(0, self.priority - ESCALATION_STEP) if self.at_risk(now) else self.priority


def tiers(batches: Iterable[ActiveBatch], now: float) -> list[list[ActiveBatch]]:
    """Batches grouped by effective priority, best first; oldest first inside a tier."""
    grouped: dict[int, list[ActiveBatch]] = {}
    for batch in batches:
        grouped.setdefault(batch.effective_priority(now), []).append(batch)
    return [sorted(grouped[p], key=lambda b: (b.created_at, b.id)) for p in sorted(grouped)]


def water_fill(levels: dict[str, int], free: int) -> dict[str, int]:
    """Split ``free`` so the lowest levels rise first: e.g. levels {a: 6, b: 0}, free 4 -> {a: 0, b: 4}."""
    heap = [(level, key) for key, level in levels.items()]
    heapq.heapify(heap)
    given = dict.fromkeys(levels, 0)
    for _ in range(free):
        level, key = heapq.heappop(heap)
        given[key] += 1
        heapq.heappush(heap, (level + 1, key))
    return given


def deal(free: int, tier: list[ActiveBatch], take: Callable[[ActiveBatch, int], int]) -> int:
    """Give up to ``free`` slots to the tier's projects, fewest calls in flight first, until they are level.

    ``take(batch, n)`` uses at most n slots and says how many. Returns the slots left over.
    """
    queues: OrderedDict[str, deque[ActiveBatch]] = OrderedDict()
    levels: dict[str, int] = {}
    for batch in tier:
        queues.setdefault(batch.project_id, deque()).append(batch)
        levels[batch.project_id] = levels.get(batch.project_id, 0) + batch.in_flight
    while free > 0 and queues:
        for project, want in water_fill({p: levels[p] for p in queues}, free).items():
            batches = queues[project]
            while want > 0 and batches:
                got = take(batches[0], want)
                free, want, levels[project] = free - got, want - got, levels[project] + got
                if want > 0:  # this batch has nothing more to run now: the project's next one goes on
                    batches.popleft()
            if not batches:
                del queues[project]
    return free
