"""The planner lease: one holder at a time, taken over once it lapses or is given up, on the real schema."""

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, create_engine

from broker.db import make_engine
from broker.leadership import Leadership, give_up, take_or_renew
from broker.migrate import upgrade


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    engine = make_engine(f"sqlite:///{tmp_path}/lease.db")
    upgrade(engine)
    yield engine
    engine.dispose()


def test_one_holder_at_a_time_until_its_lease_lapses(engine: Engine) -> None:
    assert take_or_renew(engine, "planner", "a", seconds=0.3)
    assert not take_or_renew(engine, "planner", "b", seconds=0.3)  # a holds it
    assert take_or_renew(engine, "planner", "a", seconds=0.3)  # and renews it
    time.sleep(0.4)  # a stopped renewing (it died)
    assert take_or_renew(engine, "planner", "b", seconds=0.3)
    assert not take_or_renew(engine, "planner", "a", seconds=0.3)  # back from a stall: a does not lead again


def test_a_planner_that_stops_gives_the_lease_to_the_next_at_once(engine: Engine) -> None:
    first, second = Leadership(engine), Leadership(engine)
    assert first.try_once() and first.is_leader()
    assert not second.try_once() and not second.is_leader()
    give_up(engine, "planner", first.holder)  # what first.run does when its process stops cleanly
    assert second.try_once() and second.is_leader()
    assert not first.try_once() and not first.is_leader()


def test_a_leader_that_cannot_renew_stops_counting_itself_leader(engine: Engine) -> None:
    leader = Leadership(engine)
    assert leader.try_once()
    engine.dispose()
    leader.engine = create_engine("postgresql+psycopg://nobody@127.0.0.1:1/gone")  # the database is unreachable
    assert not leader.try_once() and not leader.is_leader()
