"""Ranking at release time: priority tiers, deadline escalation, fairness between projects."""

from broker.ranking import ActiveBatch, deal, tiers

NOW = 10_000.0


def batch(id: str, project: str = "p1", priority: int = 20, created: int = 0, remaining: int = 100,
          done: int = 0, expires: int | None = 100_000, started: int | None = 0) -> ActiveBatch:
    return ActiveBatch(id, project, "/v1/chat/completions", priority, created, expires, started, remaining, done)


def test_tiers_order_by_priority_then_age() -> None:
    order = tiers([batch("low", priority=30), batch("new", created=5), batch("old", created=1),
                   batch("urgent", priority=0, created=9)], NOW)
    assert [[b.id for b in t] for t in order] == [["urgent"], ["old", "new"], ["low"]]


def test_a_batch_that_will_miss_its_window_is_escalated_one_class() -> None:
    # 9,000 s spent for 100 lines; 900 left would need 81,000 s but only 1,000 s remain
    late = batch("late", priority=30, done=100, remaining=900, expires=11_000, started=1_000)
    on_time = batch("fine", priority=30, done=900, remaining=10, expires=11_000, started=1_000)
    assert late.at_risk(NOW) and late.effective_priority(NOW) == 20
    assert not on_time.at_risk(NOW) and on_time.effective_priority(NOW) == 30
    unstarted = batch("cold", priority=20, done=0, expires=10_500, started=0)  # 5% of its window left
    assert unstarted.at_risk(NOW)
    assert [b.id for b in tiers([on_time, late], NOW)[0]] == ["late"]


def test_free_slots_are_dealt_fairly_between_projects() -> None:
    big = batch("big", project="a", remaining=50_000)
    small = batch("small", project="b", remaining=500, created=5)
    given: dict[str, int] = {"big": 0, "small": 0}
    pending = {"big": 50_000, "small": 500}

    def take(b: ActiveBatch, n: int) -> int:
        got = min(n, pending[b.id])
        pending[b.id] -= got
        given[b.id] += got
        return got

    left = deal(64, [big, small], take)
    assert left == 0 and given == {"big": 32, "small": 32}


def test_leftover_of_a_project_goes_to_the_others_and_to_its_next_batch() -> None:
    pending = {"a1": 3, "a2": 100, "b1": 100}
    given: dict[str, int] = {}

    def take(b: ActiveBatch, n: int) -> int:
        got = min(n, pending[b.id])
        pending[b.id] -= got
        given[b.id] = given.get(b.id, 0) + got
        return got

    left = deal(40, [batch("a1", "a", created=1), batch("a2", "a", created=2), batch("b1", "b", created=3)], take)
    assert left == 0 and sum(given.values()) == 40
    assert given["a1"] == 3 and given["a2"] + given["a1"] >= 19 and given["b1"] >= 19


def test_a_project_with_calls_in_flight_yields_the_next_slots_to_the_others() -> None:
    busy = ActiveBatch("busy", "a", "/v1/chat/completions", 20, 0, None, 0, 1000, 0, in_flight=6)
    idle = ActiveBatch("idle", "b", "/v1/chat/completions", 20, 1, None, 0, 1000, 0, in_flight=0)
    given: dict[str, int] = {}

    def take(b: ActiveBatch, n: int) -> int:
        given[b.id] = given.get(b.id, 0) + n
        return n

    assert deal(1, [busy, idle], take) == 0 and given == {"idle": 1}  # one slot: to the project with none
    given.clear()
    assert deal(10, [busy, idle], take) == 0 and given == {"busy": 2, "idle": 8}  # both end at 8 in flight
