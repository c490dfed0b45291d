"""Routes in the production shape (API, planner, two workers as processes; PostgreSQL + Redis): a native batch
round trip, then ordered fallback while the first deployment answers 503."""

from pathlib import Path

import openai
import pytest

from cli.local_cluster import LocalCluster
from simulator import SimulatorConfig, SimulatorServer
from tests.harness import chat_line, results_once, submit, wait_for

pytestmark = pytest.mark.integration


def providers_toml(primary: SimulatorServer, backup: SimulatorServer) -> str:
    return f"""
[providers.primary]
base_url = "{primary.base_url}"
native_batch = {{ discount = 0.5, turnaround_seconds = 30, poll_seconds = 0.3 }}
[providers.primary.models]
"gpt-4o-mini" = {{ input = 0.15, output = 0.6 }}

[providers.backup]
base_url = "{backup.base_url}"
[providers.backup.models]
"gpt-4o-mini" = {{ input = 0.15, output = 0.6 }}
"""


def usage(client: openai.OpenAI) -> dict[tuple[str, str], int]:
    report = client.get("/usage", cast_to=object)
    assert isinstance(report, dict)
    return {(r["provider"], r["route"]): r["requests"] for r in report["data"]}


def test_native_batch_and_fallback_across_processes(tmp_path: Path, pg_url: str, redis_url: str) -> None:
    with SimulatorServer(SimulatorConfig(batch_turnaround_seconds=1.0)) as primary, \
            SimulatorServer(SimulatorConfig()) as backup:
        with LocalCluster(tmp_path, pg_url, redis_url, providers_toml(primary, backup), workers=2, worker_threads=8,
                          env={"BROKER_PLANNER_INTERVAL": "0.1"}) as cluster:
            key = cluster.run("keys", "create").splitlines()[-1]
            client = openai.OpenAI(base_url=cluster.base_url, api_key=key, max_retries=0)

            cheap = wait_for(client, submit(client, [chat_line(i) for i in range(300)]).id, timeout=120)
            assert cheap.status == "completed", cluster.logs()
            out, err = results_once(client, cheap, [f"req-{i}" for i in range(300)])
            assert len(out) == 300 and primary.stats.native_batches == 1
            assert usage(client) == {("primary", "native_batch"): 300}

            primary.config.error_rate, primary.config.error_kinds = 1.0, ("503",)
            urgent = wait_for(client, submit(client, [chat_line(i) for i in range(200)], route="realtime").id,
                              timeout=120)
            assert urgent.status == "completed", cluster.logs()
            out, err = results_once(client, urgent, [f"req-{i}" for i in range(200)])
            assert len(out) == 200 and not err
            assert usage(client)[("backup", "realtime")] == 200
