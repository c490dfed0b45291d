"""What clients nobody here wrote see: ``x-request-id`` on every answer (the SDK's ``_request_id``), and ``/docs``
served offline with the bearer scheme and the upload's multipart body."""

import logging

import httpx
import openai
import pytest
from starlette.testclient import TestClient

from api.app import create_app
from api.context import ApiContext
from api.docs import DOCS_ASSETS_URL
from tests.api.conftest import Tenant


def test_every_answer_carries_a_request_id_that_the_sdk_exposes_and_the_log_names(
        tenant: Tenant, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="api.requests"):
        upload = tenant.client.files.create(file=("a.jsonl", b"{}\n"), purpose="batch")
        listing = tenant.client.files.list()
    assert upload._request_id and upload._request_id.startswith("req_")
    assert listing._request_id and listing._request_id != upload._request_id
    assert any(upload._request_id in r.getMessage() and "POST /v1/files 200" in r.getMessage()
               for r in caplog.records)
    with pytest.raises(openai.NotFoundError) as missing:
        tenant.client.batches.retrieve("batch_nope")
    assert missing.value.request_id and missing.value.request_id.startswith("req_")  # errors carry it too
    content = tenant.http.get(f"/files/{upload.id}/content")  # a streamed answer
    assert content.headers["x-request-id"].startswith("req_")
    traced = tenant.http.get("/files", headers={"x-request-id": "trace-42"})
    assert traced.headers["x-request-id"] == "trace-42"  # a caller's own id is kept, so one id spans both sides
    unauthenticated = httpx.get(f"{tenant.broker.base_url}/files")
    assert unauthenticated.status_code == 401 and unauthenticated.headers["x-request-id"].startswith("req_")


def test_docs_load_their_assets_from_the_broker_and_declare_bearer_auth_and_the_upload_body(tenant: Tenant) -> None:
    root = tenant.broker.server.url
    page = httpx.get(f"{root}/docs")
    assert page.status_code == 200
    assert "cdn" not in page.text.lower() and f"{DOCS_ASSETS_URL}/swagger-ui-bundle.js" in page.text
    for asset in ("swagger-ui-bundle.js", "swagger-ui.css"):
        served = httpx.get(f"{root}{DOCS_ASSETS_URL}/{asset}")
        assert served.status_code == 200 and len(served.content) > 10_000
    spec = httpx.get(f"{root}/openapi.json").json()
    assert spec["components"]["securitySchemes"]["bearerAuth"] == {
        "type": "http", "scheme": "bearer", "description": spec["components"]["securitySchemes"]["bearerAuth"][
            "description"]}
    assert spec["security"] == [{"bearerAuth": []}]  # Swagger's Authorize button, applied to every operation
    body = spec["paths"]["/v1/files"]["post"]["requestBody"]["content"]["multipart/form-data"]["schema"]
    assert body["required"] == ["file", "purpose"] and body["properties"]["file"]["format"] == "binary"
    assert "batch" in body["properties"]["purpose"]["enum"]


def test_an_unexpected_error_carries_its_request_id_and_the_log_names_it(
        tenant: Tenant, caplog: pytest.LogCaptureFixture) -> None:
    app = create_app(ApiContext(tenant.broker.core))

    @app.get("/v1/boom")
    def boom() -> None:  # a bug in a route: the 500 handler answers outside the middlewares
        raise RuntimeError("boom")

    with caplog.at_level(logging.INFO), TestClient(app, raise_server_exceptions=False) as client:
        answer = client.get("/v1/boom")
    request_id = answer.headers["x-request-id"]
    assert answer.status_code == 500 and answer.json()["error"]["type"] == "server_error"
    assert any(f"(request {request_id})" in r.getMessage() for r in caplog.records if r.levelno == logging.ERROR)
