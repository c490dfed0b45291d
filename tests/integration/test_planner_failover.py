"""Planner failover on real PostgreSQL + Redis: two planner processes, the leader killed with SIGKILL mid-run;
the other takes over within 15 s and the batch completes, every line once, finalized once."""

import re
import time
from pathlib import Path

import openai
import pytest

from broker.leadership import LEASE_SECONDS, RENEW_EVERY_SECONDS
from cli.local_cluster import LocalCluster
from simulator import SimulatorConfig, SimulatorServer
from tests.harness import chat_line, read_jsonl, submit, wait_for

pytestmark = pytest.mark.integration
LINES = 3000
TAKEOVER_SECONDS = 15.0  #: the issue's bound: a dead leader's successor acts within this long


def _leader(c: LocalCluster) -> str:
    """Which planner process leads now (the last one whose log says so)."""
    deadline = time.monotonic() + 30
    while True:
        leading = [n for n in ("planner", "planner2") if c.log(n).rfind(" leads") > c.log(n).rfind("no longer")]
        if len(leading) == 1:
            return leading[0]
        assert time.monotonic() < deadline, "no single leader:\n" + c.logs()
        time.sleep(0.1)


def test_the_second_planner_takes_over_from_a_killed_leader_and_nothing_is_done_twice(
        tmp_path: Path, pg_url: str, redis_url: str) -> None:
    with SimulatorServer(SimulatorConfig(latency_median_ms=100, latency_sigma=0.2)) as sim:
        providers = (f'[providers.sim]\nbase_url = "{sim.base_url}"\nmax_concurrency = 32\n'
                     '[providers.sim.models]\n"gpt-4o-mini" = { input = 0.15, output = 0.6 }\n')
        env = {"BROKER_LEASE_SECONDS": "3", "BROKER_PLANNER_INTERVAL": "0.1"}
        with LocalCluster(tmp_path, pg_url, redis_url, providers, workers=1, worker_threads=8, env=env) as c:
            c.spawn("planner2", "planner")
            key = c.run("keys", "create", "--project", "failover").splitlines()[-1]
            client = openai.OpenAI(base_url=c.base_url, api_key=key, max_retries=0)
            leader = _leader(c)
            follower = "planner2" if leader == "planner" else "planner"
            batch = submit(client, [chat_line(i) for i in range(LINES)])
            wait_for(client, batch.id, timeout=60, until=lambda b: bool(
                b.request_counts and b.request_counts.completed >= LINES // 10))
            c.kill(leader)
            killed_at = time.monotonic()
            while " leads" not in c.log(follower):
                assert time.monotonic() - killed_at < TAKEOVER_SECONDS, "no takeover:\n" + c.logs()
                time.sleep(0.1)
            took_over = time.monotonic() - killed_at
            assert took_over <= LEASE_SECONDS + RENEW_EVERY_SECONDS + 1
            done = wait_for(client, batch.id, timeout=180)
            assert done.status == "completed", c.logs()
            assert done.request_counts is not None and done.request_counts.completed == LINES
            out = read_jsonl(client, done.output_file_id)
            assert sorted(line["custom_id"] for line in out) == sorted(f"req-{i}" for i in range(LINES))
            finalized = [m for n in ("planner", "planner2")
                         for m in re.findall(rf"batch {done.id} completed: (\d+) output lines", c.log(n))]
            assert finalized == [str(LINES)], "finalized more than once (or not by a planner):\n" + c.logs()
            assert "Traceback" not in c.log(follower), c.log(follower)
