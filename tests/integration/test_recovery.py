"""Recovery on the production shape (API, planner and two workers as OS processes on PostgreSQL + Redis), one test
per crash: a worker killed mid-batch, Redis restarted mid-batch, the planner killed mid-finalize and the API killed
mid-validation (DESIGN.md invariant 9: liveness, not long timeouts).

The simulator counts every request by its body, so a line sent upstream twice shows. Only the lines a killed worker
held may run twice (their calls were cut mid-way, or answered before their results were stored): they were sent
under a live lease, and running them again is the recovery.
"""

import re
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import openai
import psycopg
import pytest

from broker.claims import CLAIM_SECONDS
from broker.settings import DEFAULT_LEASE_SECONDS
from cli.local_cluster import LocalCluster, LocalRedis
from simulator import SimulatorConfig, SimulatorServer
from tests.harness import chat_ids, chat_line, read_jsonl, submit, wait_for

pytestmark = pytest.mark.integration
TICK = 0.1  #: planner interval here: recovery times below are bounded by leases and claims, not by ticks
PROVIDERS = '[providers.sim]\nbase_url = "{url}"\nmax_concurrency = 128\n' \
            '[providers.sim.models]\n"gpt-4o-mini" = {{ input = 0.15, output = 0.6 }}\n'


class Cluster:
    def __init__(self, tmp_path: Path, pg_url: str, redis_url: str, sim: SimulatorServer) -> None:
        self.pg_url, self.sim = pg_url, sim
        self.local = LocalCluster(tmp_path, pg_url, redis_url, PROVIDERS.format(url=sim.base_url), workers=2,
                                  worker_threads=8, env={"BROKER_PLANNER_INTERVAL": str(TICK)})

    def __enter__(self) -> "Cluster":
        self.local.start()
        key = self.local.run("keys", "create", "--project", "it").splitlines()[-1]
        self.client = openai.OpenAI(base_url=self.local.base_url, api_key=key, max_retries=5)
        return self

    def __exit__(self, *exc: object) -> None:
        self.local.stop()

    def sql(self, query: str, *params: object) -> list[tuple[object, ...]]:
        with psycopg.connect(self.pg_url) as conn:
            return conn.execute(query, params).fetchall()  # type: ignore[arg-type]

    def status(self, batch_id: str) -> str:
        return str(self.sql("SELECT status FROM batch WHERE id = %s", batch_id)[0][0])

    def done(self, batch_id: str) -> int:
        rows = self.sql("SELECT completed + failed FROM batch WHERE id = %s", batch_id)
        return int(rows[0][0]) if rows else 0  # type: ignore[call-overload]

    def wait_done(self, batch_id: str, at_least: int, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while self.done(batch_id) < at_least:
            assert time.monotonic() < deadline, self.local.logs()
            time.sleep(0.05)

    def assert_each_line_once(self, batch_id: str, n: int, rerun: int = 0) -> None:
        """Every line exactly once in the output file, none failed, and no upstream call repeated beyond ``rerun``
        (lines taken back from a killed worker)."""
        batch = wait_for(self.client, batch_id, timeout=180)
        assert batch.status == "completed", self.local.logs()
        out = read_jsonl(self.client, batch.output_file_id)
        assert sorted(line["custom_id"] for line in out) == sorted(chat_ids(n))
        assert batch.error_file_id is None
        assert self.sim.stats.repeated_calls <= rerun, (self.sim.stats.repeated_calls, rerun)


class Stalls:
    """Watches a batch's progress from a thread: the longest time without a line ending."""

    def __init__(self, cluster: Cluster, batch_id: str) -> None:
        self.cluster, self.batch_id = cluster, batch_id
        self.longest, self._stop = 0.0, threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)

    def __enter__(self) -> "Stalls":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _watch(self) -> None:
        last, since = -1, time.monotonic()
        while not self._stop.wait(0.05):
            done = self.cluster.done(self.batch_id)
            if done != last:
                last, since = done, time.monotonic()
            self.longest = max(self.longest, time.monotonic() - since)


@pytest.fixture
def sim() -> Iterator[SimulatorServer]:
    with SimulatorServer(SimulatorConfig(latency_median_ms=200, latency_sigma=0.3)) as server:
        yield server


def test_a_killed_workers_lines_run_again_within_a_lease_and_none_is_answered_twice(
        tmp_path: Path, pg_url: str, redis_url: str, sim: SimulatorServer) -> None:
    n = 3000
    with Cluster(tmp_path, pg_url, redis_url, sim) as c:
        batch = submit(c.client, [chat_line(i) for i in range(n)])
        c.wait_done(batch.id, 500)
        sim.config.latency_median_ms = 1500  # whatever the workers hold now is still in flight at the kill
        time.sleep(0.5)
        victim, in_flight = c.local.busiest_worker()  # it has calls in flight now, hence leased lines
        c.local.kill(victim)
        killed_at = time.monotonic()
        # every line the dead worker held stays leased (as it was) until its lease ends
        held = dict(c.sql("SELECT id, attempts FROM line WHERE batch_id = %s AND status = 'queued'", batch.id))
        sim.config.latency_median_ms = 200
        while c.sql("SELECT count(*) FROM line WHERE id = ANY(%s) AND status = 'queued' AND attempts = "
                    "(SELECT a FROM unnest(%s::bigint[], %s::int[]) AS h(i, a) WHERE h.i = line.id)",
                    list(held), list(held), list(held.values()))[0][0]:
            assert time.monotonic() - killed_at < 3 * DEFAULT_LEASE_SECONDS, c.local.logs()
            time.sleep(0.05)
        moved_on = time.monotonic() - killed_at

        # only the dead worker's leases can have expired (the live one lost none): a line runs again only if taken back
        taken_back = sum(int(k) for k in re.findall(r"took back (\d+) expired leases", c.local.log("planner")))
        assert "moved on before their lines ended" not in c.local.log("worker1") + c.local.log("worker2")
        c.assert_each_line_once(batch.id, n, rerun=taken_back)
        assert taken_back > 0, f"{victim} had {in_flight} calls in flight at the kill, yet no lease was taken back"
        assert sim.stats.abandoned > 0, f"{victim} had {in_flight} calls in flight at the kill, yet none was cut"
        assert moved_on <= DEFAULT_LEASE_SECONDS + 2, f"the dead worker's lines waited {moved_on:.1f} s"


def test_redis_restarted_mid_batch_loses_nothing_and_runs_nothing_twice(
        tmp_path: Path, pg_url: str, sim: SimulatorServer) -> None:
    n = 3000
    with LocalRedis(tmp_path / "redis") as redis, Cluster(tmp_path, pg_url, redis.url, sim) as c:
        batch = submit(c.client, [chat_line(i) for i in range(n)])
        with Stalls(c, batch.id) as stalls:
            c.wait_done(batch.id, 500)
            redis.restart(down_seconds=2)  # every queued message is gone, and every connection broken
            restarted_at, done_then = time.monotonic(), c.done(batch.id)
            c.wait_done(batch.id, done_then + 200)
            resumed = time.monotonic() - restarted_at
            c.assert_each_line_once(batch.id, n)
        assert resumed <= 10, f"dispatch resumed {resumed:.1f} s after Redis came back"
        assert stalls.longest <= DEFAULT_LEASE_SECONDS + 4, f"no line ended for {stalls.longest:.1f} s"


def test_a_planner_killed_mid_finalize_is_taken_over_within_a_claim(
        tmp_path: Path, pg_url: str, redis_url: str, sim: SimulatorServer) -> None:
    sim.config.latency_median_ms = 0
    n = 5000  # answers echo the prompt: ~40 MB of output, which takes a while to write
    with Cluster(tmp_path, pg_url, redis_url, sim) as c:
        batch = submit(c.client, [chat_line(i, f"{i} " + "long prompt " * 350) for i in range(n)])
        deadline = time.monotonic() + 300
        while c.status(batch.id) != "finalizing":
            assert time.monotonic() < deadline, c.local.logs()
            time.sleep(0.01)
        c.local.kill("planner")
        killed_at = time.monotonic()
        assert c.status(batch.id) == "finalizing", "finalization ended before the kill: nothing was tested"
        c.local.restart("planner")  # another planner (a supervisor's restart)
        while c.status(batch.id) == "finalizing":
            assert time.monotonic() - killed_at < 3 * CLAIM_SECONDS, c.local.logs()
            time.sleep(0.05)
        taken_over = time.monotonic() - killed_at
        c.assert_each_line_once(batch.id, n)
        assert taken_over <= CLAIM_SECONDS + 3, f"finalizing stayed {taken_over:.1f} s after the kill"


def test_an_api_killed_mid_validation_is_taken_over_within_a_claim(
        tmp_path: Path, pg_url: str, redis_url: str, sim: SimulatorServer) -> None:
    sim.config.latency_median_ms = 0
    n = 60_000  # a few seconds of validation
    with Cluster(tmp_path, pg_url, redis_url, sim) as c:
        batch = submit(c.client, [chat_line(i) for i in range(n)])
        time.sleep(0.5)  # the API validates in the background after answering
        c.local.kill("api")
        killed_at = time.monotonic()
        assert c.status(batch.id) == "validating", "validation ended before the kill: nothing was tested"
        assert c.sql("SELECT claimed_until FROM batch WHERE id = %s", batch.id)[0][0] is not None
        c.local.restart("api")
        while c.status(batch.id) == "validating":
            assert time.monotonic() - killed_at < 3 * CLAIM_SECONDS, c.local.logs()
            time.sleep(0.05)
        taken_over = time.monotonic() - killed_at
        c.local.wait_healthy()
        batch = c.client.batches.retrieve(batch.id)
        assert batch.status in ("in_progress", "finalizing", "completed"), batch.errors
        assert batch.request_counts is not None and batch.request_counts.total == n
        assert c.sql("SELECT count(*), count(DISTINCT custom_id) FROM line WHERE batch_id = %s", batch.id)[0] == (n, n)
        assert taken_over <= CLAIM_SECONDS + 5, f"validating stayed {taken_over:.1f} s after the kill"
        c.client.batches.cancel(batch.id)  # running 60,000 lines proves nothing more here
