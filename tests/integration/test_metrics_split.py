"""Metrics of the split deployment: ``broker api``, ``broker planner`` and two ``broker worker`` processes on real
PostgreSQL and Redis, each serving its own /metrics; summed over the processes they match the API's numbers."""

from collections.abc import Iterator
from pathlib import Path

import openai
import pytest

from cli.local_cluster import LocalCluster
from simulator import SimulatorConfig, SimulatorServer
from tests.harness import chat_line, embedding_line, submit, wait_for
from tests.scrape import Samples, scrape, summed, total

pytestmark = pytest.mark.integration
WORKERS = ("worker1", "worker2")


@pytest.fixture
def cluster(tmp_path: Path, pg_url: str, redis_url: str) -> Iterator[tuple[LocalCluster, str, SimulatorServer]]:
    config = SimulatorConfig(latency_median_ms=20, error_rate=0.1, error_kinds=("500", "503"), seed=5)
    with SimulatorServer(config) as sim:
        providers = (f'[providers.sim]\nbase_url = "{sim.base_url}"\nmax_concurrency = 32\nrpm = 100000\n'
                     '[providers.sim.models]\n"gpt-4o-mini" = { input = 0.15, output = 0.6 }\n'
                     '"text-embedding-3-small" = { input = 0.02 }\n')
        env = {"BROKER_PLANNER_INTERVAL": "0.1", "BROKER_RETRY_BASE_SECONDS": "0.05",
               "BROKER_RETRY_MAX_SECONDS": "0.2"}
        with LocalCluster(tmp_path, pg_url, redis_url, providers, workers=len(WORKERS), worker_threads=4,
                          env=env) as c:
            key = c.run("keys", "create", "--project", "it").splitlines()[-1]
            yield c, key, sim


def test_every_role_exposes_its_metrics_and_their_sum_matches_the_api(
    cluster: tuple[LocalCluster, str, SimulatorServer],
) -> None:
    c, key, sim = cluster
    client = openai.OpenAI(base_url=c.base_url, api_key=key, max_retries=0)
    chat = submit(client, [chat_line(i) for i in range(200)])
    embeddings = submit(client, [embedding_line(i) for i in range(50)], endpoint="/v1/embeddings")
    chat, embeddings = wait_for(client, chat.id, timeout=120), wait_for(client, embeddings.id, timeout=120)
    assert (chat.status, embeddings.status) == ("completed", "completed"), c.logs()

    api, planner = scrape(c.metrics_url("api")), scrape(c.metrics_url("planner"))
    workers: list[Samples] = [scrape(c.metrics_url(name)) for name in WORKERS]
    calls = summed(workers)
    stats = sim.stats
    # the workers made every upstream call, as the simulator counted them, status by status
    assert stats.by_status.get(500, 0) + stats.by_status.get(503, 0) > 0
    for status, n in stats.by_status.items():
        assert total(calls, "broker_upstream_calls_total", provider="sim", code=str(status)) == n, status
    assert total(calls, "broker_upstream_call_seconds_count") == stats.requests
    # requests served, tokens and cost: GET /v1/usage of the project
    report = client.get("/usage", cast_to=object)
    assert isinstance(report, dict)
    completed = sum(b.request_counts.completed for b in (chat, embeddings) if b.request_counts is not None)
    assert total(calls, "broker_requests_total") == report["total_requests"] == completed
    assert total(calls, "broker_tokens_total", direction="input") == sum(r["input_tokens"] for r in report["data"])
    assert total(calls, "broker_tokens_total", direction="output") == sum(r["output_tokens"] for r in report["data"])
    assert total(calls, "broker_cost_usd_total") == pytest.approx(report["total_cost_usd"], rel=1e-6)
    # the API serves what SQL knows (once: neither planner nor workers repeat it) and makes no upstream call
    assert total(api, "broker_batches", status="completed") == 2
    assert total(api, "broker_batch_lines_ended") == 250
    assert total(api, "broker_provider_limit_in_force", provider="sim", limit="rpm") == 100000
    assert total(api, "broker_upstream_calls_total") == 0
    # the planner: its ticks and the queue it feeds
    assert total(planner, "broker_planner_tick_seconds_count") > 0
    assert ("broker_queue_messages", (("provider", "sim"),)) in planner
    for page in (planner, *workers):
        assert not any(name in ("broker_lines", "broker_batches") for name, _ in page)
    assert all(("broker_queue_messages", (("provider", "sim"),)) not in page for page in workers)
