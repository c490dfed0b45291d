"""Hostile input in the production shape (API, planner and a worker as processes; PostgreSQL + Redis): the
checks of tests/hostile.py, where NUL characters, oversized index entries and 32-bit columns really bite."""

from pathlib import Path

import httpx
import pytest
from sqlalchemy import create_engine, text

from cli.local_cluster import LocalCluster
from simulator import SimulatorConfig, SimulatorServer
from simulator.garbage import SIM_GARBAGE_ARRAY, SIM_GARBAGE_HTML, SIM_GARBAGE_TRUNCATED, SIM_GARBAGE_USAGE
from tests.api.helpers import wait_status
from tests.hostile import (
    FAIL_WITHIN,
    POISON,
    READ_TIMEOUT,
    check_bad_requests,
    check_keep_alive,
    check_poison_first_line,
    check_poison_later_lines,
    check_stalled_request_line,
    check_upstream_garbage,
)

pytestmark = pytest.mark.integration


def providers_toml(sim: SimulatorServer) -> str:
    return f"""
[providers.sim]
base_url = "{sim.base_url}"
[providers.sim.models]
"gpt-4o-mini" = {{ input = 0.15, output = 0.6 }}
"""


def _orphan_batch(pg_url: str, key_project: str) -> None:
    """A validating batch whose input file is gone (deleted under it), straight into SQL."""
    engine = create_engine(pg_url.replace("postgresql://", "postgresql+psycopg://", 1))
    with engine.begin() as conn:
        conn.execute(text(
            "INSERT INTO batch (id, project_id, endpoint, input_file_id, completion_window, status, created_at, "
            "expires_at, total, completed, failed, input_tokens, output_tokens, priority, priority_label, route, "
            "result_seq) VALUES ('batch_orphan', :p, '/v1/chat/completions', 'file-gone', '24h', 'validating', "
            "0, 86400, 0, 0, 0, 0, 0, 20, 'normal', 'auto', 0)"), {"p": key_project})
    engine.dispose()


def test_hostile_input_on_postgresql(tmp_path: Path, pg_url: str, redis_url: str) -> None:
    with SimulatorServer(SimulatorConfig()) as sim, \
            LocalCluster(tmp_path, pg_url, redis_url, providers_toml(sim), workers=1, worker_threads=4,
                         env={"BROKER_PLANNER_INTERVAL": "0.1", "BROKER_HTTP_HEADER_TIMEOUT": str(READ_TIMEOUT),
                              "BROKER_MAX_ATTEMPTS": "2", "BROKER_RETRY_BASE_SECONDS": "0.05"}) as cluster:
        key = cluster.run("keys", "create").splitlines()[-1]
        with httpx.Client(base_url=cluster.base_url, headers={"Authorization": f"Bearer {key}"}, timeout=30,
                          trust_env=False) as http:
            for name in POISON:
                check_poison_first_line(http, name)
            check_poison_later_lines(http)
            assert check_bad_requests(http) > 40, cluster.logs()
            check_keep_alive(cluster.base_url, key)
            check_stalled_request_line(cluster.base_url)
            check_upstream_garbage(http, [SIM_GARBAGE_HTML, SIM_GARBAGE_TRUNCATED, SIM_GARBAGE_ARRAY,
                                          SIM_GARBAGE_USAGE])
            latest = http.get("/batches").json()["data"][0]
            _orphan_batch(pg_url, _project_of(pg_url, latest["id"]))
            orphan = wait_status(http, "batch_orphan", ["failed"], timeout=FAIL_WITHIN)
            assert [e["code"] for e in orphan["errors"]["data"]] == ["validation_failed"]
        assert "Traceback" not in cluster.log("api"), cluster.log("api")


def _project_of(pg_url: str, batch_id: str) -> str:
    engine = create_engine(pg_url.replace("postgresql://", "postgresql+psycopg://", 1))
    with engine.connect() as conn:
        project: str = conn.execute(text("SELECT project_id FROM batch WHERE id = :b"), {"b": batch_id}).scalar_one()
    engine.dispose()
    return project
