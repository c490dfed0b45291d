"""The outbox in SQL: claims are exclusive leases, stale claimants record nothing, failing endpoints get disabled."""

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine
from sqlmodel import Session

from broker.auth import get_or_create_project
from broker.db import make_engine, session_scope
from broker.migrate import upgrade
from broker.tables import WebhookDelivery, WebhookEndpoint
from broker.webhooks.outbox import CLAIM_LEASE_SECONDS, DISABLE_AFTER_SECONDS, Attempt, claim_due, record

SCHEDULE = [10.0, 10.0]


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    engine = make_engine(f"sqlite:///{tmp_path}/outbox.db")
    upgrade(engine)
    yield engine
    engine.dispose()


def _setup(engine: Engine, deliveries: int, first_failure_at: int | None = None) -> str:
    with session_scope(engine) as session:
        project = get_or_create_project(session, "p")
        session.add(WebhookEndpoint(id="wh_1", project_id=project.id, url="https://hooks.example.com/in",
                                    secret="whsec_c2VjcmV0", events='["batch.completed"]', created_at=1,
                                    first_failure_at=first_failure_at))
        session.flush()
        for i in range(deliveries):
            session.add(WebhookDelivery(id=f"whdel_{i}", project_id=project.id, endpoint_id="wh_1",
                                        url="https://hooks.example.com/in", event_id=f"evt_{i}",
                                        event_type="batch.completed", payload="{}", next_attempt_at=time.time() - 1,
                                        created_at=1))
        return project.id


def test_a_claimed_delivery_is_not_handed_out_again_until_its_lease_expires(engine: Engine) -> None:
    _setup(engine, deliveries=3)
    first = claim_due(engine, 2)
    second = claim_due(engine, 10)
    assert [c.id for c in first] == ["whdel_0", "whdel_1"] and [c.id for c in second] == ["whdel_2"]
    assert claim_due(engine, 10) == []
    assert all(c.lease >= time.time() + CLAIM_LEASE_SECONDS - 5 for c in first + second)
    assert first[0].secret == "whsec_c2VjcmV0" and first[0].attempts == 0


def test_outcomes_follow_the_policy_and_a_stale_claim_records_nothing(engine: Engine) -> None:
    _setup(engine, deliveries=2)
    a, b = claim_due(engine, 2)
    assert record(engine, a, Attempt(status_code=302), SCHEDULE) == "pending", "3xx is a failure, retried"
    assert record(engine, a, Attempt(status_code=200), SCHEDULE) is None, "that lease was already used"
    assert record(engine, b, Attempt(status_code=204), SCHEDULE) == "delivered"
    with Session(engine) as session:
        row = session.get(WebhookDelivery, a.id)
        assert row is not None and row.attempts == 1 and row.last_status_code == 302
        assert row.next_attempt_at != a.lease and 9.0 <= row.next_attempt_at - time.time() <= 11.0
        endpoint = session.get(WebhookEndpoint, "wh_1")
        assert endpoint is not None and endpoint.enabled and endpoint.first_failure_at is None, \
            "the success after the failure ends the failure run"


def test_schedule_spent_means_failed(engine: Engine) -> None:
    _setup(engine, deliveries=1)
    [claim] = claim_due(engine, 1)
    assert record(engine, claim, Attempt(error="ConnectError"), []) == "failed"
    with Session(engine) as session:
        row = session.get(WebhookDelivery, claim.id)
        assert row is not None and (row.status, row.attempts, row.last_error) == ("failed", 1, "ConnectError")


def test_an_endpoint_failing_for_five_days_is_disabled_with_its_pending_deliveries(engine: Engine) -> None:
    _setup(engine, deliveries=3, first_failure_at=int(time.time()) - DISABLE_AFTER_SECONDS - 1)
    [claim] = claim_due(engine, 1)
    assert record(engine, claim, Attempt(status_code=500), SCHEDULE) == "pending"
    with Session(engine) as session:
        endpoint = session.get(WebhookEndpoint, "wh_1")
        assert endpoint is not None and not endpoint.enabled and "5 days" in (endpoint.disabled_reason or "")
        statuses = {d: getattr(session.get(WebhookDelivery, d), "status", None) for d in ("whdel_1", "whdel_2")}
        assert statuses == {"whdel_1": "failed", "whdel_2": "failed"}
    assert claim_due(engine, 10) == []


def test_a_recent_failure_run_does_not_disable(engine: Engine) -> None:
    _setup(engine, deliveries=1, first_failure_at=int(time.time()) - 3600)
    [claim] = claim_due(engine, 1)
    record(engine, claim, Attempt(status_code=503, retry_after=30.0), SCHEDULE)
    with Session(engine) as session:
        endpoint = session.get(WebhookEndpoint, "wh_1")
        assert endpoint is not None and endpoint.enabled
        row = session.get(WebhookDelivery, claim.id)
        assert row is not None and 29.0 <= row.next_attempt_at - time.time() <= 31.0, "Retry-After on 503"
