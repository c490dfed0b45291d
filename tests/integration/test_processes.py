"""Production shape: API, planner and two workers as separate OS processes on real Redis + PostgreSQL."""

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest

from cli.local_cluster import LocalCluster
from simulator import SimulatorConfig, SimulatorServer
from tests.harness import chat_line, read_jsonl, submit, wait_for

pytestmark = pytest.mark.integration


@pytest.fixture
def cluster(tmp_path: Path, pg_url: str, redis_url: str) -> Iterator[tuple[LocalCluster, str, SimulatorServer]]:
    # ~4 s of work at this latency and window: 16 chunks in flight, and a worker prefetches at most 8 (its threads),
    # so both workers hold leased chunks when the kill lands mid-run
    with SimulatorServer(SimulatorConfig(latency_median_ms=200, latency_sigma=0.3)) as sim:
        providers = (f'[providers.sim]\nbase_url = "{sim.base_url}"\nmax_concurrency = 256\n'
                     '[providers.sim.models]\n"gpt-4o-mini" = { input = 0.15, output = 0.6 }\n')
        env = {"BROKER_LEASE_SECONDS": "3", "BROKER_PLANNER_INTERVAL": "0.1"}
        with LocalCluster(tmp_path, pg_url, redis_url, providers, workers=2, worker_threads=8, env=env) as c:
            key = c.run("keys", "create", "--project", "it").splitlines()[-1]
            yield c, key, sim


def test_two_workers_complete_5000_lines_and_a_killed_worker_loses_nothing(
    cluster: tuple[LocalCluster, str, SimulatorServer],
) -> None:
    c, key, sim = cluster
    client = openai.OpenAI(base_url=c.base_url, api_key=key, max_retries=0)
    batch = submit(client, [chat_line(i) for i in range(5000)])
    deadline = time.monotonic() + 60
    # both workers running chunks (each reports its provider state), and the run well under way
    while _completed(client, batch.id) < 1000 or _workers_reporting(c, key) < 2:
        assert time.monotonic() < deadline, c.logs()
        time.sleep(0.1)
    sim.config.latency_median_ms = 1500  # slow calls: whatever each worker holds now is still in flight at the kill
    time.sleep(0.5)
    victim, _ = c.busiest_worker()  # one with calls in flight now (which worker holds lines swings by the moment)
    c.kill(victim)  # mid-run: its leased lines must come back
    sim.config.latency_median_ms = 200
    batch = wait_for(client, batch.id, timeout=180)
    assert batch.status == "completed", c.logs()
    assert batch.request_counts is not None and batch.request_counts.completed == 5000
    out = read_jsonl(client, batch.output_file_id)
    assert sorted(line["custom_id"] for line in out) == sorted(f"req-{i}" for i in range(5000))
    assert batch.error_file_id is None
    assert "took back" in c.log("planner"), "the killed worker held no lease: nothing was tested\n" + c.logs()
    assert sim.stats.successes >= 5000  # lines of the killed worker may have been called twice, stored once


def _workers_reporting(c: LocalCluster, key: str) -> int:
    providers = httpx.get(f"{c.base_url}/providers", headers={"Authorization": f"Bearer {key}"}).json()["data"]
    return int(providers[0]["workers"]) if providers else 0


def _completed(client: openai.OpenAI, batch_id: str) -> int:
    counts = client.batches.retrieve(batch_id).request_counts
    return counts.completed if counts else 0
