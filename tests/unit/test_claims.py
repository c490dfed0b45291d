"""Claims on a batch step: kept while the holder works, lapsed soon after it dies, then taken over."""

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, text

from broker import claims
from broker.db import make_engine
from broker.migrate import upgrade
from tests.unit.conftest import insert_batch


@pytest.fixture
def engine(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Engine]:
    monkeypatch.setattr(claims, "CLAIM_SECONDS", 1)  # scaled down from 15 s
    monkeypatch.setattr(claims, "RENEW_EVERY_SECONDS", 0.2)
    engine = make_engine(f"sqlite:///{tmp_path}/c.db")
    upgrade(engine)
    with engine.begin() as conn:
        insert_batch(conn, "validating", total=0)
    yield engine
    engine.dispose()


def test_a_working_holder_keeps_its_claim_past_the_claim_length(engine: Engine) -> None:
    assert claims.claim(engine, "b", "validating")
    assert not claims.claim(engine, "b", "validating"), "held: nobody else takes the step"
    with claims.kept_alive(engine, "b"):
        time.sleep(2.5)  # two and a half claim lengths of work
        assert not claims.claim(engine, "b", "validating"), "renewed while the holder works"


def test_a_dead_holders_claim_lapses_and_another_process_takes_over(engine: Engine) -> None:
    assert claims.claim(engine, "b", "validating")  # the holder dies here: nothing renews the claim
    assert not claims.claim(engine, "b", "validating")
    deadline = time.monotonic() + 3
    while not claims.claim(engine, "b", "validating"):
        assert time.monotonic() < deadline, "the claim did not lapse"
        time.sleep(0.1)


def test_renewal_stops_once_the_step_has_ended(engine: Engine) -> None:
    assert claims.claim(engine, "b", "validating")
    with claims.kept_alive(engine, "b"):
        with engine.begin() as conn:  # the step ends as validation does: a new status, the claim cleared
            conn.execute(text("UPDATE batch SET status = 'in_progress', claimed_until = NULL WHERE id = 'b'"))
        time.sleep(0.5)
    with engine.connect() as conn:
        assert conn.execute(text("SELECT claimed_until FROM batch WHERE id = 'b'")).scalar_one() is None
