"""The provider simulator over real HTTP: shapes, determinism, limits, injected failures, stats."""

from __future__ import annotations

import base64
import logging
import math
import random
import socket
import struct
import threading
import time
from typing import Any

import httpx
import openai
import pytest

from simulator import SimulatorConfig, SimulatorServer, create_app
from simulator.app import OpenAIDialect, draw_latency
from simulator.limits import Bucket, RateLimiter, format_duration
from simulator.responses import estimate_tokens

CHAT = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Tell me about queues please"}]


def chat(client: httpx.Client, **extra: Any) -> httpx.Response:
    return client.post("/chat/completions", json={"model": "gpt-4o-mini", "messages": CHAT, **extra})


def test_chat_is_deterministic_with_usage_through_the_sdk(sdk: openai.OpenAI) -> None:
    first = sdk.chat.completions.create(model="gpt-4o-mini", messages=CHAT)  # type: ignore[arg-type]
    second = sdk.chat.completions.create(model="gpt-4o-mini", messages=CHAT)  # type: ignore[arg-type]
    content = first.choices[0].message.content
    assert content is not None and content == second.choices[0].message.content
    assert content.startswith("Simulated reply ") and content.endswith("Tell me about queues please")
    assert first.id.startswith("chatcmpl-") and first.id != second.id
    assert first.object == "chat.completion" and first.model == "gpt-4o-mini"
    assert first.choices[0].finish_reason == "stop" and first.system_fingerprint == "fp_sim"
    usage = first.usage
    assert usage is not None
    assert usage.prompt_tokens == (estimate_tokens("Be brief.") + 3) + (estimate_tokens(CHAT[1]["content"]) + 3) + 3
    assert usage.completion_tokens == estimate_tokens(content)
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens
    assert usage.prompt_tokens_details is not None and usage.prompt_tokens_details.cached_tokens == 0
    other = sdk.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "other"}])
    assert other.choices[0].message.content != content


def test_chat_headers_max_tokens_n_and_content_parts(client: httpx.Client) -> None:
    response = chat(client, max_tokens=8, n=2)
    assert response.status_code == 200
    assert response.headers["x-request-id"].startswith("req_")
    assert int(response.headers["openai-processing-ms"]) >= 0
    assert "x-ratelimit-limit-requests" not in response.headers
    body = response.json()
    assert [c["index"] for c in body["choices"]] == [0, 1]
    assert all(c["finish_reason"] == "length" and len(c["message"]["content"]) == 32 for c in body["choices"])
    assert body["choices"][0]["message"]["content"] != body["choices"][1]["message"]["content"]
    assert body["usage"]["completion_tokens"] == 16
    parts = [{"role": "user", "content": [{"type": "text", "text": "Tell me"}, {"type": "text", "text": "more"}]}]
    body = client.post("/chat/completions", json={"model": "m", "messages": parts}).json()
    assert body["usage"]["prompt_tokens"] == estimate_tokens("Tell me") + estimate_tokens("more") + 3 + 3
    assert body["choices"][0]["message"]["content"].endswith("Tell me more")


def test_embeddings_float_base64_and_sdk_agree(client: httpx.Client, sdk: openai.OpenAI) -> None:
    request = {"model": "text-embedding-3-small", "input": ["alpha", "beta gamma"]}
    body = client.post("/embeddings", json=request).json()
    assert body["object"] == "list" and body["model"] == "text-embedding-3-small"
    assert body["usage"] == {"prompt_tokens": 2 + 3, "total_tokens": 5}
    vectors = [item["embedding"] for item in body["data"]]
    assert [item["index"] for item in body["data"]] == [0, 1]
    assert all(len(v) == 64 and math.isclose(math.fsum(x * x for x in v), 1.0, rel_tol=1e-5) for v in vectors)
    assert vectors[0] != vectors[1]
    assert client.post("/embeddings", json=request).json()["data"][0]["embedding"] == vectors[0]
    encoded = client.post("/embeddings", json={**request, "encoding_format": "base64"}).json()
    raw = base64.b64decode(encoded["data"][0]["embedding"])
    assert list(struct.unpack("<64f", raw)) == vectors[0]
    via_sdk = sdk.embeddings.create(model="text-embedding-3-small", input=["alpha", "beta gamma"])
    assert via_sdk.data[0].embedding == pytest.approx(vectors[0], abs=1e-7)
    small = sdk.embeddings.create(model="text-embedding-3-small", input="alpha", dimensions=8)
    assert len(small.data[0].embedding) == 8
    other_model = client.post("/embeddings", json={**request, "model": "text-embedding-3-large"}).json()
    assert other_model["data"][0]["embedding"] != vectors[0]


def test_embeddings_token_ids_and_invalid_inputs(sim: SimulatorServer, client: httpx.Client) -> None:
    ids = client.post("/embeddings", json={"model": "e", "input": [[1, 2, 3], [4, 5]]}).json()
    assert ids["usage"]["prompt_tokens"] == 5 and len(ids["data"]) == 2
    assert client.post("/embeddings", json={"model": "e", "input": [7, 8, 9]}).json()["usage"]["prompt_tokens"] == 3
    bad_inputs: list[Any] = ["", [], ["ok", ""], [[]], 12]
    for bad in bad_inputs:
        response = client.post("/embeddings", json={"model": "e", "input": bad})
        assert response.status_code == 400, bad
        assert response.json()["error"]["type"] == "invalid_request_error"
    sim.config.max_embedding_inputs = 2
    assert client.post("/embeddings", json={"model": "e", "input": ["a", "b", "c"]}).status_code == 400
    assert client.post("/embeddings", json={"model": "e", "input": "a", "encoding_format": "hex"}).status_code == 400


def test_completions_responses_and_moderations_shapes(client: httpx.Client, sdk: openai.OpenAI) -> None:
    completion = client.post("/completions", json={"model": "gpt-3.5-turbo-instruct", "prompt": ["one", "two"],
                                                   "max_tokens": 2}).json()
    assert completion["object"] == "text_completion" and completion["id"].startswith("cmpl-")
    assert [(c["index"], c["finish_reason"], c["logprobs"]) for c in completion["choices"]] == [
        (0, "length", None), (1, "length", None)]
    usage = completion["usage"]
    assert (usage["prompt_tokens"], usage["completion_tokens"], usage["total_tokens"]) == (2, 4, 6)

    response = sdk.responses.create(model="gpt-4o-mini", input="Summarise the queue", instructions="Be brief")
    assert response.status == "completed" and response.id.startswith("resp_")
    assert response.output_text.endswith("Summarise the queue")
    assert response.usage is not None and response.usage.output_tokens == estimate_tokens(response.output_text)
    cut = client.post("/responses", json={"model": "m", "input": [{"role": "user", "content": "hello there"}],
                                          "max_output_tokens": 2}).json()
    assert cut["status"] == "incomplete" and cut["usage"]["output_tokens"] == 2
    assert cut["output"][0]["content"][0]["type"] == "output_text"

    moderation = client.post("/moderations", json={"input": ["a calm walk", "graphic Violence here"]}).json()
    assert moderation["id"].startswith("modr-") and moderation["model"] == "omni-moderation-latest"
    calm, violent = moderation["results"]
    assert not calm["flagged"] and not any(calm["categories"].values())
    assert violent["flagged"] and violent["categories"]["violence"] and violent["category_scores"]["violence"] > 0.5
    assert "self-harm/intent" in calm["categories"] and all(s < 0.01 for s in calm["category_scores"].values())


def test_request_errors_use_the_openai_envelope(client: httpx.Client) -> None:
    missing = client.post("/chat/completions", json={"messages": CHAT})
    assert missing.status_code == 400
    assert missing.json() == {"error": {"message": "you must provide a model parameter",
                                        "type": "invalid_request_error", "param": "model", "code": None}}
    invalid = client.post("/chat/completions", content=b"{not json", headers={"content-type": "application/json"})
    assert invalid.status_code == 400 and invalid.json()["error"]["type"] == "invalid_request_error"
    assert client.post("/chat/completions", json={"model": "m"}).json()["error"]["param"] == "messages"
    marked = chat(client, messages=[{"role": "user", "content": "please __sim_error_400__"}])
    assert marked.status_code == 400 and marked.json()["error"]["code"] == "simulated_error"
    assert chat(client, max_tokens=0).status_code == 400
    unknown = client.post("/nowhere", json={})
    assert unknown.status_code == 404 and unknown.json()["error"]["message"] == "Invalid URL (POST /v1/nowhere)"


def test_models_lists_configured_and_seen_models(client: httpx.Client) -> None:
    chat(client, model="my-custom-model")
    models = client.get("/models").json()
    ids = [m["id"] for m in models["data"]]
    assert models["object"] == "list" and "gpt-4o-mini" in ids and "my-custom-model" in ids
    assert client.get("/models/my-custom-model").json()["id"] == "my-custom-model"
    assert client.get("/models/never-seen").status_code == 404


def test_rpm_limit_answers_429_like_openai(sim: SimulatorServer, client: httpx.Client) -> None:
    sim.config.rpm = 2
    first, second, third = chat(client), chat(client), chat(client)
    assert first.status_code == second.status_code == 200
    assert first.headers["x-ratelimit-limit-requests"] == "2"
    assert first.headers["x-ratelimit-remaining-requests"] == "1"
    assert third.status_code == 429
    error = third.json()["error"]
    assert error["type"] == "requests" and error["code"] == "rate_limit_exceeded" and error["param"] is None
    assert error["message"].startswith(
        "Rate limit reached for gpt-4o-mini in organization org-sim on requests per min (RPM): Limit 2, Used 2, "
        "Requested 1. Please try again in ")
    assert 29 <= int(third.headers["retry-after"]) <= 30
    assert 29000 < int(third.headers["retry-after-ms"]) <= 30000
    assert third.headers["x-ratelimit-remaining-requests"] == "0"
    assert third.headers["x-ratelimit-reset-requests"].endswith("s")
    assert chat(client).status_code == 429  # a refusal consumed nothing: still exactly 30 s away, no debt
    assert sim.stats.rate_limited == 2 and sim.stats.by_status == {200: 2, 429: 2}
    sim.config.rpm = None
    assert chat(client).status_code == 200


def test_rate_limit_headers_can_be_hidden(sim: SimulatorServer, client: httpx.Client) -> None:
    sim.app.apply_config({"rpm": 1, "ratelimit_headers": "false"})
    ok, refused = chat(client), chat(client)
    assert ok.status_code == 200 and refused.status_code == 429
    assert not [h for h in (*ok.headers, *refused.headers) if h.startswith("x-ratelimit-")]
    assert int(refused.headers["retry-after"]) >= 1, "a 429 still says when to come back"
    assert sum(sim.stats.requests_per_second.values()) == 2


def test_tpm_limit_and_request_too_large(sim: SimulatorServer, client: httpx.Client) -> None:
    sim.config.tpm = 100
    ok = chat(client, max_tokens=50)
    assert ok.status_code == 200 and ok.headers["x-ratelimit-limit-tokens"] == "100"
    cost = ok.json()["usage"]["prompt_tokens"] + 50
    assert ok.headers["x-ratelimit-remaining-tokens"] == str(100 - cost)
    limited = chat(client, max_tokens=50)
    assert limited.status_code == 429 and limited.json()["error"]["type"] == "tokens"
    assert "tokens per min (TPM): Limit 100" in limited.json()["error"]["message"]
    huge = chat(client, max_tokens=500)
    assert huge.status_code == 429 and "Request too large" in huge.json()["error"]["message"]
    assert "retry-after" not in huge.headers


def test_admin_routes_change_config_and_reset_stats(sim: SimulatorServer, client: httpx.Client) -> None:
    admin = httpx.Client(base_url=sim.url, timeout=5.0)
    with admin:
        patched = admin.post("/_sim/config", json={"rpm": 1, "error_kinds": ["503"]})
        assert patched.status_code == 200 and patched.json()["rpm"] == 1 and sim.config.error_kinds == ("503",)
        assert chat(client).status_code == 200 and chat(client).status_code == 429
        assert admin.post("/_sim/config", json={"no_such_field": 1}).status_code == 400
        assert admin.post("/_sim/config", json={"error_rate": 2}).status_code == 400
        assert sim.config.rpm == 1  # a rejected patch changes nothing
        stats = admin.get("/_sim/stats").json()
        assert stats["requests"] == 2 and stats["by_status"] == {"200": 1, "429": 1}
        assert stats["by_endpoint"] == {"/v1/chat/completions": 2} and stats["in_flight"] == 0
        assert admin.get("/_sim/config").json()["rpm"] == 1
        assert admin.post("/_sim/reset").json()["requests"] == 0
        assert chat(client).status_code == 429  # a plain reset keeps the buckets
        admin.post("/_sim/reset", json={"limits": True})
        assert chat(client).status_code == 200


@pytest.mark.parametrize(("kind", "status"), [("500", 500), ("503", 503)])
def test_injected_server_errors(sim: SimulatorServer, client: httpx.Client, kind: str, status: int) -> None:
    sim.config.error_rate, sim.config.error_kinds = 1.0, (kind,)
    response = chat(client)
    assert response.status_code == status and response.json()["error"]["type"] == "server_error"
    assert sim.stats.injected_errors == 1 and sim.stats.by_status == {status: 1}


def test_injected_drop_cuts_the_connection_quietly(
    sim: SimulatorServer, client: httpx.Client, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    sim.config.error_rate, sim.config.error_kinds = 1.0, ("drop",)
    with pytest.raises(httpx.RemoteProtocolError):
        chat(client)
    sim.config.error_rate = 0.0
    assert chat(client).status_code == 200  # the client recovers on a new connection
    assert sim.stats.dropped == 1 and sim.stats.by_status == {200: 1}
    assert not [r for r in caplog.records if r.name.startswith("uvicorn")]


def test_injected_timeout_hangs(sim: SimulatorServer, client: httpx.Client) -> None:
    sim.config.error_rate, sim.config.error_kinds, sim.config.hang_seconds = 1.0, ("timeout",), 0.5
    started = time.monotonic()
    with pytest.raises(httpx.ReadTimeout):
        client.post("/chat/completions", json={"model": "m", "messages": CHAT}, timeout=0.2)
    assert time.monotonic() - started < 0.45
    sim.config.hang_seconds = 0.05
    slow = chat(client)
    assert slow.status_code == 200 and int(slow.headers["openai-processing-ms"]) >= 45
    deadline = time.monotonic() + 2.0
    while sim.stats.client_disconnects < 1 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert sim.stats.timeouts == 2 and sim.stats.client_disconnects == 1 and sim.stats.in_flight == 0


def test_error_rate_is_a_fraction(sim: SimulatorServer, client: httpx.Client) -> None:
    sim.app.apply_config({"error_rate": 0.5, "error_kinds": ["500"], "seed": 7})
    statuses = [chat(client).status_code for _ in range(60)]
    assert 15 <= statuses.count(500) <= 45 and statuses.count(200) + statuses.count(500) == 60


def test_latency_is_lognormal_around_the_median(sim: SimulatorServer, client: httpx.Client) -> None:
    sim.config.latency_median_ms, sim.config.latency_sigma = 30.0, 0.0
    started = time.perf_counter()
    assert chat(client).status_code == 200
    assert time.perf_counter() - started >= 0.028


def test_stats_count_tokens_and_concurrency(sim: SimulatorServer, client: httpx.Client) -> None:
    sim.config.latency_median_ms, sim.config.latency_sigma = 50.0, 0.0
    bodies: list[dict[str, Any]] = []

    def call() -> None:
        with httpx.Client(base_url=sim.base_url) as own:
            bodies.append(chat(own).json())

    threads = [threading.Thread(target=call) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    stats = sim.stats
    assert stats.requests == stats.successes == 4 and stats.max_in_flight >= 2 and stats.in_flight == 0
    assert stats.prompt_tokens == sum(b["usage"]["prompt_tokens"] for b in bodies)
    assert stats.completion_tokens == sum(b["usage"]["completion_tokens"] for b in bodies)
    assert sum(stats.per_minute.values()) == 4


def test_bucket_refills_continuously_and_keeps_usage_when_halved() -> None:
    now = [100.0]
    config = SimulatorConfig(rpm=60)
    limiter = RateLimiter(config, clock=lambda: now[0])
    assert all(limiter.check("m", 1).allowed for _ in range(60))
    refused = limiter.check("m", 1)
    assert not refused.allowed and refused.headers["retry-after-ms"] == "1000"
    now[0] += 1.0
    assert limiter.check("m", 1).allowed and not limiter.check("m", 1).allowed
    now[0] += 30.0
    config.rpm = 30  # 30 refilled out of 60: halving leaves nothing
    assert not limiter.check("m", 1).allowed
    bucket = Bucket(10, 0.0)
    bucket.level = 0.0
    bucket.refill(6.0, 10)
    assert bucket.level == pytest.approx(1.0)


def test_format_duration_matches_openai() -> None:
    assert [format_duration(s) for s in (0, 0.12, 1, 17.64, 360, 61.5)] == [
        "0s", "120ms", "1s", "17.64s", "6m0s", "1m1.5s"]


def test_config_from_mapping_env_and_validation() -> None:
    config = SimulatorConfig.from_mapping({"rpm": "600", "tpm": "none", "error_kinds": "500,drop"})
    assert config.rpm == 600 and config.tpm is None and config.error_kinds == ("500", "drop")
    env = SimulatorConfig.from_env({"BROKER_SIM_LATENCY_MEDIAN_MS": "20", "BROKER_SIM_SEED": "3", "OTHER": "x"})
    assert env.latency_median_ms == 20.0 and env.seed == 3
    for bad in ({"error_rate": 1.5}, {"error_kinds": ["boom"]}, {"rpm": -1}, {"nope": 1}, {"seed": 1.5}):
        with pytest.raises(ValueError):
            SimulatorConfig.from_mapping(bad)
    assert create_app(config).config is config


def test_server_stops_cleanly_and_reports_bind_failures() -> None:
    before = set(threading.enumerate())
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(RuntimeError, match="failed to start"):
            SimulatorServer(port=port, startup_timeout=5.0).start()
    with SimulatorServer(SimulatorConfig(embedding_dim=3)) as server:
        assert server.base_url == f"http://127.0.0.1:{server.port}/v1"
        body = httpx.post(f"{server.base_url}/embeddings", json={"model": "e", "input": "x"}).json()
        assert len(body["data"][0]["embedding"]) == 3
    with pytest.raises(RuntimeError):
        _ = server.port
    assert set(threading.enumerate()) <= before


def test_stats_count_each_request_body_and_callers_that_left(sim: SimulatorServer, client: httpx.Client) -> None:
    assert chat(client).status_code == 200 and chat(client, user="a").status_code == 200
    assert (sim.stats.repeated_calls, sim.stats.repeated_answers) == (0, 0)
    assert chat(client).status_code == 200  # the same request again: billed twice
    assert (sim.stats.repeated_calls, sim.stats.repeated_answers) == (1, 1)

    sim.config.latency_median_ms, sim.config.latency_sigma = 300.0, 0.0
    with pytest.raises(httpx.ReadTimeout):  # the caller leaves mid-"generation": called again, answered once
        client.post("/chat/completions", json={"model": "gpt-4o-mini", "messages": CHAT, "user": "a"}, timeout=0.1)
    deadline = time.monotonic() + 2.0
    while sim.stats.abandoned < 1 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert sim.stats.abandoned == 1 and sim.stats.in_flight == 0
    assert (sim.stats.repeated_calls, sim.stats.repeated_answers) == (2, 1)
    assert sim.stats.to_dict()["repeated_answers"] == 1


def test_latency_by_input_gives_a_request_the_same_latency_whoever_sends_it_and_when() -> None:
    config = SimulatorConfig(latency_median_ms=400.0, latency_sigma=1.0, latency_by_input=True, seed=5)

    def latency(content: str, rng: random.Random) -> float:
        body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": content}]}
        return draw_latency(config, rng, OpenAIDialect().prepare("/v1/chat/completions", body, config))

    first = [latency(f"item {i}", random.Random(1)) for i in range(50)]
    assert [latency(f"item {i}", random.Random(i)) for i in reversed(range(50))] == first[::-1]
    assert len(set(first)) == 50 and max(first) > 3 * min(first)  # still lognormal across requests
    config.latency_by_input = False
    rng = random.Random(1)
    assert [latency("item 0", rng) for _ in range(3)] != [first[0]] * 3  # the running sequence again
