"""``/v1/models`` from the catalogue, ``/healthz``, and OpenAI's envelope for routes that do not exist."""

import httpx
import openai
import pytest

from tests.api.conftest import Tenant
from tests.api.helpers import assert_error
from tests.harness import CHAT_MODEL, EMBEDDING_MODEL, EmbeddedBroker

BROKER_OPTIONS = {"workers": False, "planner": False}


def test_models_list_is_the_catalogue(tenant: Tenant) -> None:
    models = list(tenant.client.models.list())
    assert [m.id for m in models] == tenant.broker.catalogue.model_names()
    assert {m.id for m in models} == {CHAT_MODEL, EMBEDDING_MODEL, "omni-moderation-latest"}
    assert all(m.object == "model" and m.owned_by == "sim" and m.created > 0 for m in models)
    raw = tenant.http.get("/models").json()
    assert set(raw) == {"object", "data"} and raw["object"] == "list"
    assert all({"id", "object", "created", "owned_by"} <= set(m) for m in raw["data"])  # extensions may follow


def test_models_retrieve(tenant: Tenant) -> None:
    model = tenant.client.models.retrieve(CHAT_MODEL)
    assert (model.id, model.object, model.owned_by) == (CHAT_MODEL, "model", "sim")
    with pytest.raises(openai.NotFoundError):
        tenant.client.models.retrieve("gpt-99-imaginary")
    assert_error(tenant.http.get("/models/gpt-99-imaginary"), 404, code="model_not_found")


def test_healthz_needs_no_key(shared_broker: EmbeddedBroker) -> None:
    resp = httpx.get(shared_broker.server.url + "/healthz")
    assert resp.status_code == 200
    assert resp.json() == {"status": "ok"}


@pytest.mark.parametrize(("method", "path"), [
    ("GET", "/v1/nothing-here"),
    ("GET", "/nothing-here"),
    ("POST", "/v1/audio/speech"),
    ("GET", "/v1/batches/batch_x/results"),
    ("GET", "/v1/files/file_x/content/more"),
])
def test_unknown_route_is_404_envelope(tenant: Tenant, method: str, path: str) -> None:
    resp = httpx.request(method, tenant.broker.server.url + path, headers={"Authorization": f"Bearer {tenant.key}"})
    assert_error(resp, 404)


def test_wrong_method_is_405_envelope(tenant: Tenant) -> None:
    assert_error(tenant.http.put("/files"), 405)
    assert_error(tenant.http.delete("/batches"), 405)
