"""Two worker processes on one Redis share the provider's RPM limit: the simulator never sees it exceeded."""

from pathlib import Path

import httpx
import openai
import pytest

from cli.local_cluster import LocalCluster
from providers.limits import BURST_SECONDS
from simulator import SimulatorConfig, SimulatorServer
from tests.harness import chat_line, submit, wait_for

pytestmark = pytest.mark.integration


def test_two_workers_never_exceed_the_shared_rpm(tmp_path: Path, pg_url: str, redis_url: str) -> None:
    with SimulatorServer(SimulatorConfig(latency_median_ms=50, latency_sigma=0.3, rpm=600)) as sim:
        providers = (f'[providers.sim]\nbase_url = "{sim.base_url}"\nmax_concurrency = 64\nrpm = 600\n'
                     '[providers.sim.models]\n"gpt-4o-mini" = { input = 0.15, output = 0.6 }\n')
        with LocalCluster(tmp_path, pg_url, redis_url, providers, workers=2, worker_threads=8,
                          env={"BROKER_PLANNER_INTERVAL": "0.1"}) as cluster:
            key = cluster.run("keys", "create").splitlines()[-1]
            client = openai.OpenAI(base_url=cluster.base_url, api_key=key, max_retries=0)
            batch = wait_for(client, submit(client, [chat_line(i) for i in range(240)]).id, timeout=120)
            assert batch.status == "completed", cluster.logs()
            assert sim.stats.rate_limited == 0, "two workers together exceeded the provider's limit"
            assert sim.stats.requests == 240
            # what got through in any 5 s: one bucket's burst plus 5 s of refill (two unshared buckets: twice that)
            per_second = sim.stats.successes_per_second
            seconds = range(min(per_second), max(per_second) + 1)
            busiest = max(sum(per_second.get(t + k, 0) for k in range(5)) for t in seconds)
            shared_budget = 10 * BURST_SECONDS + 5 * 10
            assert busiest <= shared_budget * 1.2, f"{busiest} calls in 5 s: the workers did not share one budget"
            # both workers took part (so the limit really was shared), as their published state shows
            providers_now = httpx.get(f"{cluster.base_url}/providers",
                                      headers={"Authorization": f"Bearer {key}"}).json()["data"]
            assert providers_now[0]["workers"] == 2, providers_now
