"""Interactive calls and a batch on one provider budget in the production shape: the API, the planner and two
workers as separate processes on real PostgreSQL and Redis."""

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest

from cli.local_cluster import LocalCluster
from providers.gateway import PUBLISH_SECONDS
from simulator import SimulatorConfig, SimulatorServer
from tests.harness import CHAT_MODEL, chat_line, submit, wait_for

pytestmark = pytest.mark.integration
MAX_CONCURRENCY = 8
MESSAGES = [{"role": "user", "content": "Interactive, please."}]


@pytest.fixture
def cluster(tmp_path: Path, pg_url: str, redis_url: str) -> Iterator[tuple[LocalCluster, str, SimulatorServer]]:
    with SimulatorServer(SimulatorConfig(latency_median_ms=200, latency_sigma=0)) as sim:
        providers = (f'[providers.sim]\nbase_url = "{sim.base_url}"\nmax_concurrency = {MAX_CONCURRENCY}\n'
                     '[providers.sim.models]\n"gpt-4o-mini" = { input = 0.15, output = 0.6 }\n')
        env = {"BROKER_PLANNER_INTERVAL": "0.1"}
        with LocalCluster(tmp_path, pg_url, redis_url, providers, workers=2, worker_threads=8, env=env) as c:
            key = c.run("keys", "create", "--project", "it").splitlines()[-1]
            yield c, key, sim


def test_interactive_calls_go_first_on_the_budget_batches_share(
    cluster: tuple[LocalCluster, str, SimulatorServer],
) -> None:
    c, key, sim = cluster
    client = openai.OpenAI(base_url=c.base_url, api_key=key, max_retries=0)
    batch = submit(client, [chat_line(i) for i in range(400)])  # ~10 s at 8 calls of 200 ms
    wait_for(client, batch.id, until=lambda b: b.request_counts is not None and b.request_counts.completed >= 40,
             timeout=60)
    took = []
    for n in range(6):
        started = time.monotonic()
        if n % 2:
            chunks = list(client.chat.completions.create(model=CHAT_MODEL, messages=MESSAGES,  # type: ignore[arg-type]
                                                         stream=True, stream_options={"include_usage": True}))
            assert chunks[-1].usage is not None
        else:
            assert client.chat.completions.create(model=CHAT_MODEL, messages=MESSAGES).choices  # type: ignore[arg-type]
        took.append(time.monotonic() - started)
    counts = client.batches.retrieve(batch.id).request_counts
    assert counts is not None and counts.completed < 400, "the batch was still running"
    assert max(took) < 2.0, f"interactive calls waited behind the batch: {took}\n{c.logs()}"
    time.sleep(PUBLISH_SECONDS)  # the API reports its calls this often, when a call ends
    client.chat.completions.create(model=CHAT_MODEL, messages=MESSAGES)  # type: ignore[arg-type]
    deadline = time.monotonic() + 10
    with httpx.Client(base_url=c.base_url, headers={"Authorization": f"Bearer {key}"}) as http:
        while (state := http.get("/providers").json()["data"][0])["interactive"]["calls_last_minute"] != 7:
            assert time.monotonic() < deadline, state
            time.sleep(0.05)
    assert state["batch"]["calls_last_minute"] > 0 and state["workers"] == 2
    assert wait_for(client, batch.id, timeout=120).status == "completed"
    assert sim.stats.max_in_flight <= MAX_CONCURRENCY, "one budget across the API and both workers"
    report = client.get("/usage", cast_to=object)
    assert isinstance(report, dict)
    routes: dict[str, int] = {}
    for row in report["data"]:  # a row per day, model and route (and usage by key beside it)
        routes[row["route"]] = routes.get(row["route"], 0) + row["requests"]
    assert routes == {"realtime": 400, "interactive": 7}
