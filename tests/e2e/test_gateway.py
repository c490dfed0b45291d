"""The real-time gateway through the official SDK: OpenAI's shapes, streaming, fallback, access and budget."""

import time
from typing import Any

import openai
import pytest

from broker.gateway import POLICY_TTL_SECONDS, REFRESH_AFTER
from providers import circuit
from providers.circuit import CIRCUIT_FAILURES
from providers.gateway import PUBLISH_SECONDS
from simulator import SimulatorServer
from tests.e2e.conftest import StartBroker
from tests.harness import (
    CHAT_MODEL,
    EMBEDDING_MODEL,
    EmbeddedBroker,
    chat_line,
    provider,
    publish_provider_state,
    submit,
    usage_by_route,
    wait_for,
)

MESSAGES = [{"role": "user", "content": "Tell me about the gateway"}]


def test_chat_non_streamed_and_streamed_give_the_same_text(broker: EmbeddedBroker) -> None:
    client = broker.client()
    raw = client.chat.completions.with_raw_response.create(model=CHAT_MODEL, messages=MESSAGES)  # type: ignore[arg-type]
    assert raw.headers["x-broker-provider"] == "sim"
    whole = raw.parse()
    assert whole.object == "chat.completion" and whole.usage is not None
    chunks = list(client.chat.completions.create(model=CHAT_MODEL, messages=MESSAGES, stream=True,  # type: ignore[arg-type]
                                                 stream_options={"include_usage": True}))
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == whole.choices[0].message.content
    assert all(c.usage is None for c in chunks[:-1])
    assert chunks[-1].choices == [] and chunks[-1].usage is not None
    assert chunks[-1].usage.total_tokens == whole.usage.total_tokens
    plain = list(client.chat.completions.create(model=CHAT_MODEL, messages=MESSAGES, stream=True))  # type: ignore[arg-type]
    assert all(c.choices for c in plain), "no usage chunk unless asked for"
    deadline = time.monotonic() + 10  # an ended call's usage is written with its slot's release, just after
    while usage_by_route(broker) != {"interactive": 3}:
        assert time.monotonic() < deadline, usage_by_route(broker)
        time.sleep(0.05)


def test_embeddings_responses_completions_and_moderations(broker: EmbeddedBroker) -> None:
    client = broker.client()
    emb = client.embeddings.create(model=EMBEDDING_MODEL, input=["one", "two"])
    assert [d.index for d in emb.data] == [0, 1] and len(emb.data[0].embedding) > 0
    resp = client.responses.create(model=CHAT_MODEL, input="hello responses")
    assert resp.status == "completed" and resp.output_text
    events = list(client.responses.create(model=CHAT_MODEL, input="hello responses", stream=True))
    assert events[0].type == "response.created" and events[-1].type == "response.completed"
    streamed = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    assert streamed == resp.output_text
    done = client.completions.create(model=CHAT_MODEL, prompt="Once upon a time")
    assert done.choices[0].text
    moderated = client.moderations.create(input="a harmless sentence")
    assert len(moderated.results) == 1


def test_unknown_model_is_404_model_not_found(broker: EmbeddedBroker) -> None:
    with pytest.raises(openai.NotFoundError) as caught:
        broker.client().chat.completions.create(model="no-such-model", messages=MESSAGES)  # type: ignore[arg-type]
    assert caught.value.code == "model_not_found"


def test_spent_budget_is_429_insufficient_quota(broker: EmbeddedBroker) -> None:
    client = broker.client()
    client.chat.completions.create(model=CHAT_MODEL, messages=MESSAGES)  # type: ignore[arg-type]
    admin = broker.admin_http()
    default = next(p for p in admin.get("/organization/projects").json()["data"] if p["name"] == "default")
    admin.post(f"/organization/projects/{default['id']}", json={"monthly_budget_usd": 0.0000001}).raise_for_status()
    time.sleep(POLICY_TTL_SECONDS)  # an API process re-reads a project's budget this often
    with pytest.raises(openai.RateLimitError) as caught:
        client.chat.completions.create(model=CHAT_MODEL, messages=MESSAGES)  # type: ignore[arg-type]
    assert caught.value.code == "insufficient_quota"
    assert caught.value.body is not None and caught.value.response.json()["error"]["type"] == "insufficient_quota"


def test_a_steady_callers_policies_are_read_again_in_the_background_before_they_go_stale(
        broker: EmbeddedBroker) -> None:
    client = broker.client()
    client.chat.completions.create(model=CHAT_MODEL, messages=MESSAGES)  # type: ignore[arg-type]
    assert broker.procs.context is not None
    ctx = broker.procs.context
    project_id, key_id, _ = ctx.projects_by_key[f"Bearer {broker.key}|"]
    policies = ctx.gateway().policies
    time.sleep(POLICY_TTL_SECONDS * REFRESH_AFTER + 0.05)
    assert policies.due(project_id, key_id) and policies.fresh(project_id, key_id)
    client.chat.completions.create(model=CHAT_MODEL, messages=MESSAGES)  # type: ignore[arg-type]
    deadline = time.monotonic() + POLICY_TTL_SECONDS / 2  # read again, without waiting for a call that finds them stale
    while policies.due(project_id, key_id):
        assert time.monotonic() < deadline, "the policies were not read again ahead of their TTL"
        time.sleep(0.01)
    assert policies.fresh(project_id, key_id)


def usage_per_key(client: openai.OpenAI) -> Any:
    return client.get("/usage", cast_to=object, options={"params": {"group_by": "api_key_id"}})


def requests_by_key(report: Any) -> dict[str, int]:
    return {row["api_key_id"]: row["requests"] for row in report["data"]}


def test_a_keys_spent_budget_is_429_insufficient_quota_and_spend_is_per_key(broker: EmbeddedBroker) -> None:
    with broker.admin_http() as admin:
        project = admin.post("/organization/projects", json={"name": "keyed"}).json()
        first, second = (admin.post(f"/organization/projects/{project['id']}/api_keys", json={"name": name}).json()
                         for name in ("first", "second"))
        a, b = broker.client(first["value"]), broker.client(second["value"])
        for _ in range(2):
            a.chat.completions.create(model=CHAT_MODEL, messages=MESSAGES)  # type: ignore[arg-type]
        list(b.chat.completions.create(model=CHAT_MODEL, messages=MESSAGES, stream=True))  # type: ignore[arg-type]
        deadline = time.monotonic() + 10  # an ended call's usage is written with its slot's release, just after
        while requests_by_key(report := usage_per_key(a)) != {first["id"]: 2, second["id"]: 1}:
            assert time.monotonic() < deadline, report
            time.sleep(0.05)
        spent = sum(row["cost_usd"] for row in report["data"] if row["api_key_id"] == first["id"])
        assert spent > 0
        admin.post(f"/organization/projects/{project['id']}/api_keys/{first['id']}",
                   json={"monthly_budget_usd": spent / 2}).raise_for_status()
    time.sleep(POLICY_TTL_SECONDS)  # an API process re-reads a key's budget and spend this often
    with pytest.raises(openai.RateLimitError) as caught:
        a.chat.completions.create(model=CHAT_MODEL, messages=MESSAGES)  # type: ignore[arg-type]
    assert caught.value.code == "insufficient_quota" and "API key 'first'" in caught.value.message
    assert caught.value.response.json()["error"]["type"] == "insufficient_quota"
    assert b.chat.completions.create(model=CHAT_MODEL, messages=MESSAGES).choices  # type: ignore[arg-type]


def test_falls_back_when_the_first_deployment_answers_503(start_broker: StartBroker, sim: SimulatorServer,
                                                          other_sim: SimulatorServer) -> None:
    sim.app.apply_config({"error_rate": 1.0, "error_kinds": ["503"]})
    broker = start_broker(provider("first", sim), provider("second", other_sim))
    client = broker.client()
    raw = client.chat.completions.with_raw_response.create(model=CHAT_MODEL, messages=MESSAGES)  # type: ignore[arg-type]
    assert raw.headers["x-broker-provider"] == "second"
    assert raw.parse().choices[0].message.content
    chunks = list(client.chat.completions.create(model=CHAT_MODEL, messages=MESSAGES, stream=True))  # type: ignore[arg-type]
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert sim.app.stats.injected_errors == 2, "the first deployment was tried by both calls"


def test_interactive_calls_open_the_circuit_that_providers_show_and_batch_lines_obey(
        start_broker: StartBroker, sim: SimulatorServer, other_sim: SimulatorServer) -> None:
    sim.app.apply_config({"error_rate": 1.0, "error_kinds": ["503"]})
    broker = start_broker(provider("flaky", sim), provider("backup", other_sim))
    client = broker.client()
    for _ in range(CIRCUIT_FAILURES):  # each call tries the first deployment, then falls back
        raw = client.chat.completions.with_raw_response.create(model=CHAT_MODEL, messages=MESSAGES)  # type: ignore[arg-type]
        assert raw.headers["x-broker-provider"] == "backup"
    assert sim.app.stats.injected_errors == CIRCUIT_FAILURES
    deadline = time.monotonic() + 10
    with broker.http() as http:
        while not (flaky := http.get("/providers").json()["data"][0])["circuit_open"]:
            assert time.monotonic() < deadline, flaky
            time.sleep(0.05)
    assert flaky["id"] == "flaky" and flaky["interactive"]["calls_last_minute"] == CIRCUIT_FAILURES
    # the process' batch lines use the same breaker: they skip the failing provider without trying it first
    batch = wait_for(client, submit(client, [chat_line(i) for i in range(10)]).id)
    assert batch.status == "completed" and batch.request_counts is not None and batch.request_counts.completed == 10
    assert sim.app.stats.injected_errors == CIRCUIT_FAILURES


def test_providers_show_the_circuit_closed_again_after_its_cooldown_without_further_calls(
        start_broker: StartBroker, sim: SimulatorServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(circuit, "CIRCUIT_COOLDOWN_SECONDS", 1.0)
    sim.app.apply_config({"error_rate": 1.0, "error_kinds": ["503"]})
    broker = start_broker(provider("flaky", sim))
    client = broker.client().with_options(max_retries=0)
    for _ in range(CIRCUIT_FAILURES):
        with pytest.raises(openai.InternalServerError):
            client.chat.completions.create(model=CHAT_MODEL, messages=MESSAGES)  # type: ignore[arg-type]
    seen = []
    deadline = time.monotonic() + 10  # well within the 30 s after which a silent process' report no longer counts
    with broker.http() as http:
        while True not in seen or seen[-1]:
            seen.append(http.get("/providers").json()["data"][0]["circuit_open"])
            assert time.monotonic() < deadline, seen
            time.sleep(0.05)
    assert True in seen


def test_providers_show_interactive_and_batch_calls(broker: EmbeddedBroker) -> None:
    client = broker.client()
    for _ in range(3):
        client.chat.completions.create(model=CHAT_MODEL, messages=MESSAGES)  # type: ignore[arg-type]
    wait_for(client, submit(client, [chat_line(i) for i in range(5)]).id)
    publish_provider_state(broker)
    time.sleep(PUBLISH_SECONDS)  # an API process reports its calls this often, when a call ends
    client.chat.completions.create(model=CHAT_MODEL, messages=MESSAGES)  # type: ignore[arg-type]
    deadline = time.monotonic() + 10
    with broker.http() as http:
        while (sim := http.get("/providers").json()["data"][0])["interactive"]["calls_last_minute"] != 4:
            assert time.monotonic() < deadline, sim
            time.sleep(0.05)
    assert sim["interactive"] == {"in_flight": 0, "calls_last_minute": 4}
    assert sim["batch"] == {"in_flight": 0, "calls_last_minute": 5}
    assert sim["calls_last_minute"] == 9 and sim["workers"] == 1
