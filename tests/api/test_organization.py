"""The Administration API: projects and API keys under /v1/organization, admin vs project keys, scopes, expiry,
revocation and rotation. Admin endpoints answer 403 to project keys; a project key never reaches another project."""

import time
from collections.abc import Iterator
from typing import Any
from uuid import uuid4

import httpx
import pytest

from tests.api.conftest import Tenant
from tests.api.helpers import assert_error, upload
from tests.harness import EmbeddedBroker

BROKER_OPTIONS = {"workers": False, "planner": False}
ADMIN_ENDPOINTS = [
    ("GET", "/organization/projects"), ("POST", "/organization/projects"), ("GET", "/organization/projects/p"),
    ("POST", "/organization/projects/p"), ("POST", "/organization/projects/p/archive"),
    ("GET", "/organization/projects/p/api_keys"), ("POST", "/organization/projects/p/api_keys"),
    ("GET", "/organization/projects/p/api_keys/k"), ("POST", "/organization/projects/p/api_keys/k"),
    ("DELETE", "/organization/projects/p/api_keys/k"), ("POST", "/organization/projects/p/api_keys/k/rotate"),
    ("GET", "/organization/admin_api_keys"), ("POST", "/organization/admin_api_keys"),
    ("GET", "/organization/admin_api_keys/k"), ("DELETE", "/organization/admin_api_keys/k"),
    ("POST", "/organization/admin_api_keys/k/rotate"), ("GET", "/organization/audit_logs"),
    ("GET", "/organization/projects/p/rate_limits"), ("POST", "/organization/projects/p/rate_limits/rl-m"),
]
PROJECT_KEYS = {"id", "object", "name", "created_at", "archived_at", "status", "monthly_budget_usd",
                "month_to_date_cost_usd", "regions", "allowed_models", "blocked_models"}
KEY_FIELDS = {"object", "id", "name", "redacted_value", "created_at", "last_used_at", "expires_at", "project_id",
              "scope", "monthly_budget_usd", "previous_value_expires_at"}


@pytest.fixture
def admin(shared_broker: EmbeddedBroker) -> Iterator[httpx.Client]:
    with shared_broker.admin_http() as client:
        yield client


def new_project(admin: httpx.Client, **fields: Any) -> dict[str, Any]:
    resp = admin.post("/organization/projects", json={"name": f"team-{uuid4().hex[:10]}", **fields})
    assert resp.status_code == 200, resp.text
    project: dict[str, Any] = resp.json()
    return project


def new_key(admin: httpx.Client, project_id: str, **fields: Any) -> dict[str, Any]:
    resp = admin.post(f"/organization/projects/{project_id}/api_keys", json=fields)
    assert resp.status_code == 200, resp.text
    key: dict[str, Any] = resp.json()
    return key


def status_with(broker: EmbeddedBroker, key: str, path: str = "/files") -> int:
    with broker.http(key) as client:
        return client.get(path).status_code


@pytest.mark.parametrize(("method", "path"), ADMIN_ENDPOINTS)
def test_admin_endpoints_are_403_to_project_keys_and_401_without_a_key(
        tenant: Tenant, method: str, path: str) -> None:
    error = assert_error(tenant.http.request(method, path, json={}), 403, code="insufficient_permissions")
    assert "admin" in error["message"]
    assert_error(httpx.request(method, tenant.broker.base_url + path, json={}), 401)


def test_project_lifecycle(admin: httpx.Client) -> None:
    created = new_project(admin, monthly_budget_usd=12.5, regions=["eu"])
    assert set(created) == PROJECT_KEYS
    assert created["object"] == "organization.project" and created["status"] == "active"
    assert created["id"].startswith("proj_") and created["archived_at"] is None
    assert (created["monthly_budget_usd"], created["regions"], created["allowed_models"]) == (12.5, ["eu"], None)
    pid = created["id"]
    assert admin.get(f"/organization/projects/{pid}").json() == created

    renamed = admin.post(f"/organization/projects/{pid}", json={"name": created["name"] + "-x", "regions": None})
    assert renamed.status_code == 200, renamed.text
    assert renamed.json()["name"] == created["name"] + "-x" and renamed.json()["regions"] is None
    assert renamed.json()["monthly_budget_usd"] == 12.5  # fields not sent stay as they were
    cleared = admin.post(f"/organization/projects/{pid}", json={"monthly_budget_usd": None}).json()
    assert cleared["monthly_budget_usd"] is None

    archived = admin.post(f"/organization/projects/{pid}/archive").json()
    assert archived["status"] == "archived" and archived["archived_at"] >= created["created_at"]
    assert pid not in {p["id"] for p in admin.get("/organization/projects", params={"limit": 100}).json()["data"]}
    assert_error(admin.post(f"/organization/projects/{pid}", json={"name": "again"}), 400, code="project_archived")
    assert_error(admin.post(f"/organization/projects/{pid}/api_keys", json={}), 400, code="project_archived")


def test_project_errors(admin: httpx.Client) -> None:
    assert_error(admin.get("/organization/projects/proj_missing"), 404, param="project_id")
    assert_error(admin.post("/organization/projects/proj_missing", json={"name": "x"}), 404)
    assert_error(admin.post("/organization/projects/proj_missing/archive"), 404)
    assert_error(admin.post("/organization/projects", json={}), 400, param="name")
    assert_error(admin.post("/organization/projects", json={"name": "x", "monthly_budget_usd": -1}), 400)
    taken = new_project(admin)
    assert_error(admin.post("/organization/projects", json={"name": taken["name"]}), 409, code="project_name_taken")


def test_projects_list_pages(admin: httpx.Client) -> None:
    ids = [new_project(admin)["id"] for _ in range(3)]
    seen: list[str] = []
    after = ids[0]
    page = admin.get("/organization/projects", params={"limit": 1, "after": after}).json()
    assert set(page) == {"object", "data", "first_id", "last_id", "has_more"} and page["object"] == "list"
    while True:
        seen += [p["id"] for p in page["data"]]
        if not page["has_more"]:
            break
        page = admin.get("/organization/projects", params={"limit": 1, "after": page["last_id"]}).json()
    assert seen[:2] == ids[1:]  # oldest first, after the cursor


def test_archived_projects_keys_stop_working_and_its_data_stays_readable_by_admins(
        shared_broker: EmbeddedBroker, admin: httpx.Client) -> None:
    pid = new_project(admin)["id"]
    value = new_key(admin, pid)["value"]
    with shared_broker.http(value) as member:
        file_id = upload(member, b"{}\n").json()["id"]
    admin.post(f"/organization/projects/{pid}/archive")
    with shared_broker.http(value) as member:
        assert_error(member.get("/files"), 401, code="invalid_api_key")
    as_project = {"OpenAI-Project": pid}
    assert admin.get(f"/files/{file_id}", headers=as_project).status_code == 200
    resp = admin.post("/files", headers=as_project, files={"file": ("a.jsonl", b"{}\n")}, data={"purpose": "batch"})
    assert_error(resp, 403, code="project_archived")
    assert_error(admin.get("/files", headers={"OpenAI-Project": "proj_missing"}), 404)


def test_project_key_lifecycle(shared_broker: EmbeddedBroker, admin: httpx.Client) -> None:
    pid = new_project(admin)["id"]
    created = new_key(admin, pid, name="ci")
    value, kid = created["value"], created["id"]
    assert set(created) == KEY_FIELDS | {"value"} and created["object"] == "organization.project.api_key"
    assert created["redacted_value"] == f"{value[:10]}...{value[-4:]}" and created["scope"] == "all"
    assert created["last_used_at"] is None and created["project_id"] == pid
    assert status_with(shared_broker, value) == 200

    listed = admin.get(f"/organization/projects/{pid}/api_keys").json()["data"]
    assert [k["id"] for k in listed] == [kid] and "value" not in listed[0]
    shown = admin.get(f"/organization/projects/{pid}/api_keys/{kid}").json()
    assert set(shown) == KEY_FIELDS and shown["last_used_at"] is not None

    changed = admin.post(f"/organization/projects/{pid}/api_keys/{kid}", json={"name": "ci-2", "monthly_budget_usd": 3})
    assert changed.json()["name"] == "ci-2" and changed.json()["monthly_budget_usd"] == 3

    deleted = admin.delete(f"/organization/projects/{pid}/api_keys/{kid}").json()
    assert deleted == {"id": kid, "object": "organization.project.api_key.deleted", "deleted": True}
    assert status_with(shared_broker, value) == 401
    assert_error(admin.get(f"/organization/projects/{pid}/api_keys/{kid}"), 404)
    assert_error(admin.delete(f"/organization/projects/{pid}/api_keys/{kid}"), 404)
    assert admin.get(f"/organization/projects/{pid}/api_keys").json()["data"] == []


def test_a_key_is_only_reachable_under_its_own_project(admin: httpx.Client) -> None:
    mine, other = new_project(admin)["id"], new_project(admin)["id"]
    kid = new_key(admin, mine)["id"]
    assert_error(admin.get(f"/organization/projects/{other}/api_keys/{kid}"), 404)
    assert_error(admin.delete(f"/organization/projects/{other}/api_keys/{kid}"), 404)
    assert_error(admin.post(f"/organization/projects/{other}/api_keys/{kid}/rotate"), 404)
    assert_error(admin.get(f"/organization/admin_api_keys/{kid}"), 404)  # a project key is no admin key
    assert_error(admin.get("/organization/projects/proj_missing/api_keys"), 404)
    assert_error(admin.post("/organization/projects/proj_missing/api_keys", json={}), 404)


def test_a_project_key_names_no_other_project(shared_broker: EmbeddedBroker, admin: httpx.Client,
                                              tenant: Tenant) -> None:
    other = new_project(admin)["id"]
    assert_error(tenant.http.get("/files", headers={"OpenAI-Project": other}), 401, code="mismatched_project")


def test_rotation_keeps_the_old_value_for_the_grace_period(shared_broker: EmbeddedBroker, admin: httpx.Client) -> None:
    pid = new_project(admin)["id"]
    key = new_key(admin, pid)
    rotated = admin.post(f"/organization/projects/{pid}/api_keys/{key['id']}/rotate",
                         json={"grace_period_seconds": 3600}).json()
    assert rotated["id"] == key["id"] and rotated["value"] != key["value"]
    assert rotated["previous_value_expires_at"] >= time.time() + 3590
    assert status_with(shared_broker, key["value"]) == 200 and status_with(shared_broker, rotated["value"]) == 200
    again = admin.post(f"/organization/projects/{pid}/api_keys/{key['id']}/rotate",
                       json={"grace_period_seconds": 0}).json()
    assert status_with(shared_broker, rotated["value"]) == 401  # no grace: the old value stops at once
    assert status_with(shared_broker, again["value"]) == 200
    assert_error(admin.post(f"/organization/projects/{pid}/api_keys/{key['id']}/rotate",
                            json={"grace_period_seconds": -1}), 400)


def test_read_only_keys_read_but_never_write(shared_broker: EmbeddedBroker, admin: httpx.Client) -> None:
    pid = new_project(admin)["id"]
    writer, reader = new_key(admin, pid)["value"], new_key(admin, pid, scope="read_only")["value"]
    with shared_broker.http(writer) as w, shared_broker.http(reader) as r:
        file_id = upload(w, b"{}\n").json()["id"]
        assert r.get(f"/files/{file_id}").status_code == 200 and r.get("/batches").status_code == 200
        assert_error(upload(r, b"{}\n"), 403, code="insufficient_permissions")
        assert_error(r.delete(f"/files/{file_id}"), 403)
        assert_error(r.post("/batches", json={"input_file_id": file_id, "endpoint": "/v1/chat/completions",
                                              "completion_window": "24h"}), 403)
        assert w.get(f"/files/{file_id}").status_code == 200  # untouched


def test_expired_keys_are_refused(shared_broker: EmbeddedBroker, admin: httpx.Client) -> None:
    pid = new_project(admin)["id"]
    assert_error(admin.post(f"/organization/projects/{pid}/api_keys", json={"expires_at": int(time.time()) - 1}),
                 400, param="expires_at")
    value = new_key(admin, pid, expires_at=int(time.time()) + 2)["value"]
    assert status_with(shared_broker, value) == 200
    time.sleep(2.2)
    with shared_broker.http(value) as client:
        assert "expired" in assert_error(client.get("/files"), 401, code="invalid_api_key")["message"]


def test_admin_key_lifecycle(shared_broker: EmbeddedBroker, admin: httpx.Client) -> None:
    created = admin.post("/organization/admin_api_keys", json={"name": "ops"}).json()
    assert created["object"] == "organization.admin_api_key" and created["value"].startswith("sk-ib-admin-")
    kid, value = created["id"], created["value"]
    listed = admin.get("/organization/admin_api_keys", params={"limit": 100}).json()["data"]
    assert kid in {k["id"] for k in listed} and all("value" not in k for k in listed)
    assert admin.get(f"/organization/admin_api_keys/{kid}").json()["name"] == "ops"
    assert status_with(shared_broker, value, "/organization/projects") == 200
    rotated = admin.post(f"/organization/admin_api_keys/{kid}/rotate", json={"grace_period_seconds": 0}).json()
    assert status_with(shared_broker, value, "/organization/projects") == 401
    assert status_with(shared_broker, rotated["value"], "/organization/projects") == 200
    assert admin.delete(f"/organization/admin_api_keys/{kid}").json() == {
        "id": kid, "object": "organization.admin_api_key.deleted", "deleted": True}
    assert status_with(shared_broker, rotated["value"], "/organization/projects") == 401
    assert_error(admin.get(f"/organization/admin_api_keys/{kid}"), 404)
    assert_error(admin.post("/organization/admin_api_keys", json={"scope": "read_only"}), 400)
