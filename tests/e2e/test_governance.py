"""Teams and keys through the official SDK: revoked and rotated keys, model access, spend and budgets per key."""

import time
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest

from broker.catalogue import ModelSpec, ProviderConfig
from simulator import SimulatorServer
from tests.e2e.conftest import StartBroker
from tests.harness import (
    INPUT_PRICE,
    OUTPUT_PRICE,
    EmbeddedBroker,
    chat_line,
    read_jsonl,
    results_once,
    submit,
    wait_for,
)


@pytest.fixture
def broker(start_broker: StartBroker, sim: SimulatorServer) -> EmbeddedBroker:
    models = {name: ModelSpec(input=INPUT_PRICE, output=OUTPUT_PRICE) for name in ("model-a", "model-b")}
    return start_broker(ProviderConfig(name="sim", base_url=sim.base_url, models=models))


@pytest.fixture
def admin(broker: EmbeddedBroker) -> Iterator[httpx.Client]:
    with broker.admin_http() as client:
        yield client


def project_with_key(admin: httpx.Client, name: str, **policies: Any) -> tuple[str, dict[str, Any]]:
    project = admin.post("/organization/projects", json={"name": name, **policies}).json()
    key = admin.post(f"/organization/projects/{project['id']}/api_keys", json={"name": f"{name}-key"}).json()
    return project["id"], key


def line(i: int, model: str) -> dict[str, Any]:
    return chat_line(i, model=model)


def test_a_revoked_key_gets_401_on_its_next_call(broker: EmbeddedBroker, admin: httpx.Client) -> None:
    pid, key = project_with_key(admin, "revoked")
    client = broker.client(key["value"])
    assert [m.id for m in client.models.list()] == ["model-a", "model-b"]
    chat = {"model": "model-a", "messages": [{"role": "user", "content": "hi"}]}
    assert client.chat.completions.create(**chat).choices  # the gateway now remembers the key for a few seconds
    admin.delete(f"/organization/projects/{pid}/api_keys/{key['id']}")
    for call in (client.models.list, lambda: client.chat.completions.create(**chat)):
        with pytest.raises(openai.AuthenticationError) as info:
            call()
        assert info.value.status_code == 401 and info.value.code == "invalid_api_key"


def test_a_rotated_keys_old_value_works_until_the_grace_period_ends(broker: EmbeddedBroker,
                                                                    admin: httpx.Client) -> None:
    pid, key = project_with_key(admin, "rotated")
    old, new = broker.client(key["value"]), None
    rotated = admin.post(f"/organization/projects/{pid}/api_keys/{key['id']}/rotate",
                         json={"grace_period_seconds": 2}).json()
    new = broker.client(rotated["value"])
    batch = submit(old, [line(0, "model-a")])  # the old value still works, for reads and writes
    assert wait_for(new, batch.id).status == "completed"
    while time.time() <= rotated["previous_value_expires_at"]:
        time.sleep(0.1)
    with pytest.raises(openai.AuthenticationError):
        old.batches.retrieve(batch.id)
    assert new.batches.retrieve(batch.id).status == "completed"


def test_a_project_allowed_only_model_a_sees_only_it_and_cannot_run_model_b(broker: EmbeddedBroker,
                                                                           admin: httpx.Client) -> None:
    _, key = project_with_key(admin, "only-a", allowed_models=["model-a"])
    client = broker.client(key["value"])
    assert [m.id for m in client.models.list()] == ["model-a"]
    with pytest.raises(openai.NotFoundError):
        client.models.retrieve("model-b")
    refused = wait_for(client, submit(client, [line(0, "model-a"), line(1, "model-b")]).id)
    assert refused.status == "failed" and refused.errors is not None and refused.errors.data is not None
    assert [(e.code, e.line) for e in refused.errors.data] == [("model_not_allowed", 2)]
    allowed = wait_for(client, submit(client, [line(i, "model-a") for i in range(3)]).id)
    assert allowed.status == "completed"
    messages: Any = [{"role": "user", "content": "hi"}]
    assert client.chat.completions.create(model="model-a", messages=messages).choices
    with pytest.raises(openai.NotFoundError) as interactive:  # as OpenAI answers a model the key may not use
        client.chat.completions.create(model="model-b", messages=messages)
    assert interactive.value.code == "model_not_found"


def test_spend_per_key_and_a_keys_monthly_budget(broker: EmbeddedBroker, admin: httpx.Client) -> None:
    pid, first = project_with_key(admin, "spend")
    second = admin.post(f"/organization/projects/{pid}/api_keys", json={"name": "second"}).json()
    a, b = broker.client(first["value"]), broker.client(second["value"])
    done = wait_for(a, submit(a, [line(i, "model-a") for i in range(4)]).id)
    wait_for(b, submit(b, [line(i, "model-b") for i in range(2)]).id)
    report: Any = a.get("/usage", cast_to=object, options={"params": {"group_by": "api_key_id"}})
    by_key = {(r["api_key_id"], r["model"]): r["requests"] for r in report["data"]}
    assert by_key == {(first["id"], "model-a"): 4, (second["id"], "model-b"): 2}
    assert report["total_requests"] == 6

    spent = (done.model_extra or {})["cost_usd"]
    admin.post(f"/organization/projects/{pid}/api_keys/{first['id']}", json={"monthly_budget_usd": spent / 2})
    blocked = wait_for(a, submit(a, [line(0, "model-a")]).id)  # the first key spent its budget this month
    _, errors = results_once(a, blocked, ["req-0"])
    assert [e["error"]["code"] for e in errors] == ["budget_exceeded"]
    assert "monthly budget" in read_jsonl(a, blocked.error_file_id)[0]["error"]["message"]
    other = wait_for(b, submit(b, [line(0, "model-a")]).id)  # the project's other key is not held back
    assert other.request_counts is not None and other.request_counts.completed == 1
