"""Hostile input on the embedded broker (SQLite): poison lines fail their batch in seconds with per-line errors,
bad requests answer 4xx and keep the connection open (tests/hostile.py; on PostgreSQL in tests/integration)."""

import pytest
from sqlalchemy import text

from broker.auth import get_or_create_project
from broker.db import session_scope
from tests.api.conftest import Tenant, open_tenant
from tests.api.helpers import create_batch, upload, wait_status
from tests.harness import EmbeddedBroker, chat_line, jsonl
from tests.hostile import (
    FAIL_WITHIN,
    POISON,
    READ_TIMEOUT,
    check_bad_requests,
    check_keep_alive,
    check_poison_first_line,
    check_poison_later_lines,
    check_stalled_request_line,
)

BROKER_OPTIONS = {"http_header_timeout": READ_TIMEOUT, "http_body_timeout": READ_TIMEOUT}


@pytest.mark.parametrize("name", list(POISON))
def test_poison_line_first_fails_the_batch(tenant: Tenant, name: str) -> None:
    check_poison_first_line(tenant.http, name)


def test_poison_lines_later_are_each_listed_and_stall_no_other_batch(tenant: Tenant) -> None:
    check_poison_later_lines(tenant.http)


def test_bad_requests_answer_4xx(tenant: Tenant) -> None:
    assert check_bad_requests(tenant.http) > 40


def test_keep_alive_survives_every_bad_request(tenant: Tenant) -> None:
    check_keep_alive(tenant.broker.base_url, tenant.key)


def test_a_batch_that_cannot_be_validated_fails_and_the_planner_goes_on(shared_broker: EmbeddedBroker) -> None:
    """A validating batch whose input file vanished (deleted under it) fails with the reason, once, at the
    planner's next tick, and a good batch created beside it completes."""
    with open_tenant(shared_broker, "vanished-input") as tenant:
        with session_scope(shared_broker.core.engine) as session:
            project_id = get_or_create_project(session, "vanished-input").id
            session.connection().execute(text(
                "INSERT INTO batch (id, project_id, endpoint, input_file_id, completion_window, status, created_at, "
                "expires_at, total, completed, failed, input_tokens, output_tokens, priority, priority_label, route, "
                "result_seq) VALUES ('batch_orphan', :p, '/v1/chat/completions', 'file-gone', '24h', 'validating', "
                "0, 86400, 0, 0, 0, 0, 0, 20, 'normal', 'auto', 0)"), {"p": project_id})
        good = create_batch(tenant.http, upload(tenant.http, jsonl([chat_line(0)])).json()["id"]).json()["id"]
        orphan = wait_status(tenant.http, "batch_orphan", ["failed"], timeout=FAIL_WITHIN)
        assert [(e["code"], e["line"]) for e in orphan["errors"]["data"]] == [("validation_failed", None)]
        assert wait_status(tenant.http, good, ["completed", "failed"], timeout=60)["status"] == "completed"


def test_a_stalled_request_line_is_closed_within_the_header_timeout(shared_broker: EmbeddedBroker) -> None:
    check_stalled_request_line(shared_broker.base_url)
