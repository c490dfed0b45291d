"""Rate limits per project: a project held to 60 requests a minute on a model gets that rate, while another
project's batch on the same provider runs at what the provider has left."""

import time
from typing import Any

import httpx
import openai

from simulator import SimulatorServer
from tests.harness import CHAT_MODEL, EmbeddedBroker, MakeBroker, chat_line, submit

PROVIDER_RPM = 1200  #: 20 requests a second, shared by both projects
PROJECT_RPM = 60  #: the held project's own limit: 1 a second
WARM_UP_SECONDS = 3.0  #: buckets start full (a second's burst): measure after that
MEASURE_SECONDS = 15.0


def completed(client: openai.OpenAI, batch_id: str) -> int:
    counts = client.batches.retrieve(batch_id).request_counts
    assert counts is not None
    return counts.completed


def test_a_project_limit_holds_while_another_project_gets_the_rest_of_the_provider(
        make_broker: MakeBroker, sim: SimulatorServer) -> None:
    broker: EmbeddedBroker = make_broker(provider={"rpm": PROVIDER_RPM})
    with broker.admin_http() as admin:
        projects: list[dict[str, Any]] = []
        for name in ("held", "free"):
            pid = admin.post("/organization/projects", json={"name": name}).json()["id"]
            projects.append({"id": pid, "key": admin.post(f"/organization/projects/{pid}/api_keys", json={})
                             .json()["value"]})
        limit = admin.post(f"/organization/projects/{projects[0]['id']}/rate_limits/rl-{CHAT_MODEL}",
                           json={"max_requests_per_1_minute": PROJECT_RPM})
        assert limit.status_code == 200, limit.text
    held, free = (broker.client(p["key"]) for p in projects)
    held_batch = submit(held, [chat_line(i) for i in range(100)]).id
    free_batch = submit(free, [chat_line(i) for i in range(1000)]).id
    time.sleep(WARM_UP_SECONDS)
    start, held_0, free_0 = time.monotonic(), completed(held, held_batch), completed(free, free_batch)
    time.sleep(MEASURE_SECONDS)
    elapsed = time.monotonic() - start
    held_rate = (completed(held, held_batch) - held_0) / elapsed * 60
    free_rate = (completed(free, free_batch) - free_0) / elapsed * 60
    assert abs(held_rate - PROJECT_RPM) <= 0.1 * PROJECT_RPM, held_rate
    assert free_rate >= 0.9 * (PROVIDER_RPM - PROJECT_RPM), free_rate
    assert sim.stats.rate_limited == 0
    for client, batch_id in ((held, held_batch), (free, free_batch)):
        client.batches.cancel(batch_id)


def test_rate_limit_endpoints(broker: EmbeddedBroker) -> None:
    with broker.admin_http() as admin, broker.http() as member:
        pid = admin.post("/organization/projects", json={"name": "limited"}).json()["id"]
        listed = admin.get(f"/organization/projects/{pid}/rate_limits").json()
        assert {r["model"] for r in listed["data"]} == {CHAT_MODEL, "text-embedding-3-small", "omni-moderation-latest"}
        assert listed["data"][0] == {"object": "project.rate_limit", "id": f"rl-{listed['data'][0]['model']}",
                                     "model": listed["data"][0]["model"], "max_requests_per_1_minute": None,
                                     "max_tokens_per_1_minute": None}
        path = f"/organization/projects/{pid}/rate_limits/rl-{CHAT_MODEL}"
        assert admin.post(path, json={"max_tokens_per_1_minute": 10_000}).json()["max_tokens_per_1_minute"] == 10_000
        both = admin.post(path, json={"max_requests_per_1_minute": 30}).json()
        assert (both["max_requests_per_1_minute"], both["max_tokens_per_1_minute"]) == (30, 10_000)
        shown = {r["model"]: r for r in admin.get(f"/organization/projects/{pid}/rate_limits").json()["data"]}
        assert shown[CHAT_MODEL]["max_requests_per_1_minute"] == 30
        cleared = admin.post(path, json={"max_requests_per_1_minute": None, "max_tokens_per_1_minute": None}).json()
        assert cleared["max_requests_per_1_minute"] is None and cleared["max_tokens_per_1_minute"] is None
        assert admin.post(path, json={"max_requests_per_1_minute": 0}).status_code == 400
        assert admin.post(f"/organization/projects/{pid}/rate_limits/rl-nope", json={}).status_code == 404
        assert admin.post(f"/organization/projects/proj_nope/rate_limits/rl-{CHAT_MODEL}", json={}).status_code == 404
        assert member.get(f"/organization/projects/{pid}/rate_limits").status_code == 403
        types = [e["type"] for e in admin.get("/organization/audit_logs", params={"project_ids[]": pid}).json()["data"]]
        assert types.count("rate_limit.updated") == 3
    assert httpx.get(broker.base_url + f"/organization/projects/{pid}/rate_limits").status_code == 401
