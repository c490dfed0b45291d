"""Production shape: API, planner and two workers as separate OS processes on real Redis + PostgreSQL."""

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from broker.simulator import SimulatorConfig, SimulatorServer
from tests.harness import chat_line, read_jsonl, submit, wait_for

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]


class Cluster:
    def __init__(self, tmp: Path, pg_url: str, redis_url: str, sim: SimulatorServer) -> None:
        providers = tmp / "providers.toml"
        providers.write_text(
            f'[providers.sim]\nbase_url = "{sim.base_url}"\nmax_concurrency = 32\n'
            '[providers.sim.models]\n"gpt-4o-mini" = { input = 0.15, output = 0.6 }\n'
        )
        self.env = {**os.environ, "DATABASE_URL": pg_url, "REDIS_URL": redis_url,
                    "BROKER_PROVIDERS_FILE": str(providers), "BROKER_DATA_DIR": str(tmp / "data"),
                    "BROKER_LEASE_SECONDS": "3", "BROKER_PLANNER_INTERVAL": "0.1"}
        self.tmp = tmp
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.port = 0

    def run(self, *args: str) -> str:
        done = subprocess.run([sys.executable, "-m", "cli.main", *args], cwd=ROOT, env=self.env,
                              capture_output=True, check=True, timeout=60)
        return done.stdout.decode().strip()

    def spawn(self, name: str, *args: str) -> subprocess.Popen[bytes]:
        log = (self.tmp / f"{name}.log").open("wb")
        proc = subprocess.Popen([sys.executable, "-m", "cli.main", *args], cwd=ROOT, env=self.env,
                                stdout=log, stderr=subprocess.STDOUT)
        self.procs[name] = proc
        return proc

    def start(self) -> str:
        self.run("db", "upgrade")
        key = self.run("keys", "create", "--project", "it").splitlines()[-1]
        import socket

        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.spawn("api", "api", "--host", "127.0.0.1", "--port", str(self.port))
        self.spawn("planner", "planner")
        self.spawn("worker1", "worker", "--threads", "8")
        self.spawn("worker2", "worker", "--threads", "8")
        deadline = time.monotonic() + 30
        while True:
            try:
                httpx.get(f"http://127.0.0.1:{self.port}/healthz", timeout=1).raise_for_status()
                return key
            except httpx.HTTPError:
                if time.monotonic() > deadline:
                    raise AssertionError("API did not start: " + (self.tmp / "api.log").read_text()) from None
                time.sleep(0.2)

    def stop(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.procs.values():
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()

    def logs(self) -> str:
        return "\n".join(f"--- {p.name}\n{p.read_text()[-3000:]}" for p in self.tmp.glob("*.log"))


@pytest.fixture
def cluster(tmp_path: Path, pg_url: str, redis_url: str) -> Iterator[tuple[Cluster, str, SimulatorServer]]:
    with SimulatorServer(SimulatorConfig(latency_median_ms=20, latency_sigma=0.3)) as sim:
        c = Cluster(tmp_path, pg_url, redis_url, sim)
        try:
            key = c.start()
            yield c, key, sim
        finally:
            c.stop()


def test_two_workers_complete_5000_lines_and_a_killed_worker_loses_nothing(
    cluster: tuple[Cluster, str, SimulatorServer],
) -> None:
    import openai

    c, key, sim = cluster
    client = openai.OpenAI(base_url=f"http://127.0.0.1:{c.port}/v1", api_key=key, max_retries=0)
    batch = submit(client, [chat_line(i) for i in range(5000)])
    deadline = time.monotonic() + 60
    while client.batches.retrieve(batch.id).request_counts.completed < 1000:  # type: ignore[union-attr]
        assert time.monotonic() < deadline, c.logs()
        time.sleep(0.1)
    c.procs["worker1"].send_signal(signal.SIGKILL)  # mid-run: its leased lines must come back
    c.procs["worker1"].wait(10)
    batch = wait_for(client, batch.id, timeout=180)
    assert batch.status == "completed", c.logs()
    assert batch.request_counts is not None and batch.request_counts.completed == 5000
    out = read_jsonl(client, batch.output_file_id)
    assert sorted(line["custom_id"] for line in out) == sorted(f"req-{i}" for i in range(5000))
    assert batch.error_file_id is None
    assert "took back" in (c.tmp / "planner.log").read_text(), "the killed worker held no lease: nothing tested"
    assert sim.stats.successes >= 5000  # lines of the killed worker may have been called twice, stored once
