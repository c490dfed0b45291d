"""The audit log (who did what, when, from where, with OpenAI's filters) and model access per project
(``/v1/models``, batch validation, schedules)."""

import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.api.helpers import assert_error, create_batch, upload, wait_status
from tests.api.test_organization import new_key, new_project
from tests.harness import CHAT_MODEL, EMBEDDING_MODEL, EmbeddedBroker, embedding_line, jsonl

BROKER_OPTIONS = {"workers": False, "planner": False}


@pytest.fixture
def admin(shared_broker: EmbeddedBroker) -> Iterator[httpx.Client]:
    with shared_broker.admin_http() as client:
        yield client


def events(admin: httpx.Client, **params: Any) -> list[dict[str, Any]]:
    resp = admin.get("/organization/audit_logs", params=params)
    assert resp.status_code == 200, resp.text
    data: list[dict[str, Any]] = resp.json()["data"]
    return data


def test_audit_log_records_admin_actions_key_changes_and_new_addresses(
        shared_broker: EmbeddedBroker, admin: httpx.Client) -> None:
    started = int(time.time())
    project = new_project(admin)
    pid = project["id"]
    key = new_key(admin, pid, name="ci")
    for _ in range(2):  # the second call comes from a known address: no second event
        with shared_broker.http(key["value"]) as member:
            assert member.get("/files").status_code == 200
    admin.post(f"/organization/projects/{pid}/api_keys/{key['id']}/rotate", json={"grace_period_seconds": 0})
    admin.delete(f"/organization/projects/{pid}/api_keys/{key['id']}")

    log = events(admin, **{"project_ids[]": pid})
    assert [e["type"] for e in log] == ["api_key.deleted", "api_key.rotated", "api_key.used_from_new_ip",
                                        "api_key.created", "project.created"]
    deleted = log[0]
    assert deleted["object"] == "organization.audit_log" and deleted["effective_at"] >= started
    assert deleted["project"] == {"id": pid, "name": project["name"]}
    assert deleted["actor"]["type"] == "api_key" and deleted["actor"]["ip_address"] == "127.0.0.1"
    assert deleted["actor"]["api_key"]["type"] == "admin"
    assert deleted["api_key.deleted"] == {"id": key["id"]}
    assert log[1]["api_key.rotated"]["grace_period_seconds"] == 0
    used = log[2]
    assert used["actor"]["api_key"] == {"id": key["id"], "type": "project"}
    assert used["api_key.used_from_new_ip"] == {"id": key["id"], "ip_address": "127.0.0.1"}
    assert log[3]["api_key.created"]["data"] == {"kind": "project", "name": "ci", "scope": "all"}
    assert log[4]["project.created"]["id"] == pid

    only = {"project_ids[]": pid}
    assert [e["type"] for e in events(admin, **only, **{"event_types[]": ["api_key.created", "project.created"]})] \
        == ["api_key.created", "project.created"]
    assert [e["type"] for e in events(admin, **only, **{"actor_ids[]": key["id"]})] == ["api_key.used_from_new_ip"]
    assert len(events(admin, **{"resource_ids[]": key["id"]})) == 4
    assert events(admin, **only, **{"effective_at[gt]": int(time.time()) + 5}) == []
    assert events(admin, **only, **{"effective_at[lt]": started}) == []
    assert len(events(admin, **only, **{"effective_at[gte]": started, "effective_at[lte]": int(time.time())})) == 5
    first = admin.get("/organization/audit_logs", params={**only, "limit": 2}).json()
    assert len(first["data"]) == 2 and first["has_more"] is True
    rest = events(admin, **only, after=first["last_id"])
    assert [e["id"] for e in first["data"] + rest] == [e["id"] for e in log]


def test_project_changes_are_audited_with_what_changed(admin: httpx.Client) -> None:
    pid = new_project(admin)["id"]
    admin.post(f"/organization/projects/{pid}", json={"allowed_models": [CHAT_MODEL]})
    admin.post(f"/organization/projects/{pid}/archive")
    log = events(admin, **{"project_ids[]": pid})
    assert [e["type"] for e in log] == ["project.archived", "project.updated", "project.created"]
    assert log[1]["project.updated"]["changes_requested"] == {"allowed_models": [CHAT_MODEL]}


def embedding_with(model: str, i: int) -> dict[str, Any]:
    return {**embedding_line(i), "body": {"model": model, "input": "text"}}


def models_seen(broker: EmbeddedBroker, key: str) -> list[str]:
    with broker.http(key) as client:
        return [m["id"] for m in client.get("/models").json()["data"]]


def test_models_list_and_retrieve_show_only_what_the_project_may_use(
        shared_broker: EmbeddedBroker, admin: httpx.Client) -> None:
    pid = new_project(admin, allowed_models=[CHAT_MODEL])["id"]
    value = new_key(admin, pid)["value"]
    assert models_seen(shared_broker, value) == [CHAT_MODEL]
    with shared_broker.http(value) as client:
        assert client.get(f"/models/{CHAT_MODEL}").status_code == 200
        assert_error(client.get(f"/models/{EMBEDDING_MODEL}"), 404, code="model_not_found")
    admin.post(f"/organization/projects/{pid}", json={"allowed_models": None, "blocked_models": [CHAT_MODEL]})
    seen = models_seen(shared_broker, value)
    assert CHAT_MODEL not in seen and EMBEDDING_MODEL in seen
    admin.post(f"/organization/projects/{pid}", json={"blocked_models": None})
    assert CHAT_MODEL in models_seen(shared_broker, value)


def test_a_line_naming_a_model_the_project_may_not_use_fails_validation(
        shared_broker: EmbeddedBroker, admin: httpx.Client) -> None:
    pid = new_project(admin, allowed_models=[EMBEDDING_MODEL])["id"]
    with shared_broker.http(new_key(admin, pid)["value"]) as client:
        lines = [embedding_line(0), embedding_with(CHAT_MODEL, 1), embedding_line(2)]
        file_id = upload(client, jsonl(lines)).json()["id"]
        batch = wait_status(client, create_batch(client, file_id, "/v1/embeddings").json()["id"], ["failed"])
    errors = batch["errors"]["data"]
    assert [(e["code"], e["line"], e["param"]) for e in errors] == [("model_not_allowed", 2, "body.model")]
    assert CHAT_MODEL in errors[0]["message"]


def test_schedules_are_checked_against_model_access_when_created(
        shared_broker: EmbeddedBroker, admin: httpx.Client) -> None:
    pid = new_project(admin, blocked_models=[CHAT_MODEL])["id"]
    with shared_broker.http(new_key(admin, pid)["value"]) as client:
        refused = upload(client, jsonl([embedding_line(0), embedding_with(CHAT_MODEL, 1)])).json()["id"]
        allowed = upload(client, jsonl([embedding_line(0)])).json()["id"]
        body = {"cron": "0 3 * * *", "endpoint": "/v1/embeddings", "completion_window": "24h"}
        error = assert_error(client.post("/schedules", json={**body, "input_file_id": refused}), 400,
                             code="model_not_allowed", param="input_file_id")
        assert "line 2" in error["message"]
        assert client.post("/schedules", json={**body, "input_file_id": allowed}).status_code == 200
