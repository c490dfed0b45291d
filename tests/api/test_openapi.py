"""The OpenAPI document states the statuses the API really answers, each error with OpenAI's envelope; a 405
carries its Allow header. (tests/api/test_fuzz.py checks the answers against the document.)"""

from typing import Any

import httpx

from api.docs import BEARER
from tests.api.conftest import Tenant
from tests.api.helpers import assert_error

BROKER_OPTIONS = {"workers": False, "planner": False}
ERROR_REF = {"$ref": "#/components/schemas/ErrorResponse"}


def _document(tenant: Tenant) -> dict[str, Any]:
    with httpx.Client(base_url=tenant.broker.server.url, trust_env=False) as http:
        doc: dict[str, Any] = http.get("/openapi.json").json()
    return doc


def test_every_operation_documents_its_error_statuses_with_the_error_schema(tenant: Tenant) -> None:
    doc = _document(tenant)
    assert set(doc["components"]["schemas"]["ErrorResponse"]["properties"]) == {"error"}
    assert "HTTPValidationError" not in doc["components"]["schemas"]
    for path, operations in doc["paths"].items():
        for method, operation in operations.items():
            responses = operation["responses"]
            assert "422" not in responses, (method, path)  # validation errors answer 400, as OpenAI does
            expected = ({"400", "401"} if path.startswith("/v1/") else set()) | ({"404"} if "{" in path else set())
            assert expected <= set(responses), (method, path, responses)
            for status in expected:
                assert responses[status]["content"]["application/json"]["schema"] == ERROR_REF
            assert operation["security"] == ([{BEARER: []}] if path.startswith("/v1/") else [])
    assert "413" in doc["paths"]["/v1/files"]["post"]["responses"]
    assert {"404", "429"} <= set(doc["paths"]["/v1/batches"]["post"]["responses"])
    assert "409" in doc["paths"]["/v1/webhooks/deliveries/{delivery_id}/redeliver"]["post"]["responses"]
    assert "multipart/form-data" in doc["paths"]["/v1/files"]["post"]["requestBody"]["content"]


def test_405_answers_carry_an_allow_header(tenant: Tenant) -> None:
    resp = tenant.http.put("/batches")
    assert_error(resp, 405)
    assert set(resp.headers["allow"].replace(" ", "").split(",")) == {"GET", "POST"}
    resp = tenant.http.patch("/files/file-abc")
    assert_error(resp, 405)
    assert set(resp.headers["allow"].replace(" ", "").split(",")) == {"GET", "DELETE"}
