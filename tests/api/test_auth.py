"""Authentication and tenancy: keys are required and checked, and a project never sees another's objects."""

import time

import httpx
import openai
import pytest

from tests.api.conftest import Tenant, open_tenant
from tests.api.helpers import assert_error, create_batch, upload
from tests.harness import EmbeddedBroker, chat_line, jsonl, wait_for

PROTECTED = [("GET", "/files"), ("POST", "/files"), ("GET", "/files/file_x"), ("GET", "/files/file_x/content"),
             ("DELETE", "/files/file_x"), ("GET", "/batches"), ("POST", "/batches"), ("GET", "/batches/batch_x"),
             ("POST", "/batches/batch_x/cancel"), ("GET", "/models")]


@pytest.mark.parametrize(("method", "path"), PROTECTED)
def test_no_key_is_401_envelope(shared_broker: EmbeddedBroker, method: str, path: str) -> None:
    resp = httpx.request(method, shared_broker.base_url + path)
    error = assert_error(resp, 401, param=None)
    assert "API key" in error["message"]


@pytest.mark.parametrize("header", [
    "Bearer sk-ib-this-key-was-never-issued",
    "Bearer",
    "Basic dXNlcjpwYXNz",
    "sk-ib-no-scheme",
])
def test_bad_authorization_header_is_401(shared_broker: EmbeddedBroker, header: str) -> None:
    resp = httpx.get(shared_broker.base_url + "/files", headers={"Authorization": header})
    assert_error(resp, 401)


def test_wrong_key_is_invalid_api_key_through_the_sdk(shared_broker: EmbeddedBroker) -> None:
    client = shared_broker.client("sk-ib-wrong")
    with pytest.raises(openai.AuthenticationError) as info:
        client.files.list()
    assert info.value.status_code == 401 and info.value.code == "invalid_api_key"
    with pytest.raises(openai.AuthenticationError):
        client.batches.create(input_file_id="file_x", endpoint="/v1/chat/completions", completion_window="24h")
    raw = httpx.get(shared_broker.base_url + "/batches", headers={"Authorization": "Bearer sk-ib-wrong"})
    assert_error(raw, 401, code="invalid_api_key")


def test_another_project_sees_nothing(tenant: Tenant, other_tenant: Tenant) -> None:
    owner, stranger = tenant, other_tenant
    content = jsonl([chat_line(0), chat_line(1)])
    file_id = upload(owner.http, content).json()["id"]
    batch = wait_for(owner.client, create_batch(owner.http, file_id).json()["id"])
    assert batch.status == "completed" and batch.output_file_id is not None
    output_id = batch.output_file_id

    for fid in (file_id, output_id):
        assert_error(stranger.http.get(f"/files/{fid}"), 404)
        assert_error(stranger.http.get(f"/files/{fid}/content"), 404)
        assert_error(stranger.http.delete(f"/files/{fid}"), 404)
    assert_error(stranger.http.get(f"/batches/{batch.id}"), 404)
    assert_error(stranger.http.post(f"/batches/{batch.id}/cancel"), 404)
    assert_error(create_batch(stranger.http, file_id), 404)  # cannot run another project's file
    assert stranger.http.get("/files").json()["data"] == []
    assert stranger.http.get("/files", params={"purpose": "batch_output"}).json()["data"] == []
    assert stranger.http.get("/batches").json()["data"] == []
    with pytest.raises(openai.NotFoundError):
        stranger.client.files.content(file_id)
    with pytest.raises(openai.NotFoundError):
        stranger.client.batches.cancel(batch.id)
    assert list(stranger.client.batches.list()) == []

    # the owner still has everything, untouched by the stranger's attempts
    assert owner.http.get(f"/files/{file_id}/content").content == content
    assert {f["id"] for f in owner.http.get("/files").json()["data"]} == {file_id, output_id}
    assert [b["id"] for b in owner.http.get("/batches").json()["data"]] == [batch.id]
    assert owner.client.batches.retrieve(batch.id).status == "completed"


def test_a_cancellable_batch_cannot_be_cancelled_by_another_project(tenant: Tenant, other_tenant: Tenant) -> None:
    file_id = upload(tenant.http, jsonl([chat_line(0)])).json()["id"]
    batch_id = create_batch(tenant.http, file_id, not_before=int(time.time()) + 3600).json()["id"]
    assert_error(other_tenant.http.post(f"/batches/{batch_id}/cancel"), 404)
    time.sleep(0.2)
    assert tenant.http.get(f"/batches/{batch_id}").json()["status"] in ("validating", "in_progress")


def test_keys_of_one_project_share_its_objects(shared_broker: EmbeddedBroker, tenant: Tenant) -> None:
    file_id = upload(tenant.http, b"{}\n").json()["id"]
    project = f"shared-{file_id[-8:]}"
    with open_tenant(shared_broker, project) as first, open_tenant(shared_broker, project) as second:
        shared_id = upload(first.http, b"{}\n").json()["id"]
        assert second.http.get(f"/files/{shared_id}").status_code == 200
        assert [f["id"] for f in second.http.get("/files").json()["data"]] == [shared_id]
        assert_error(second.http.get(f"/files/{file_id}"), 404)
