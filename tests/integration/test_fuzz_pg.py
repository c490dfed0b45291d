"""Schemathesis (tests/fuzzing.py) against the API process of the production shape, on PostgreSQL, where a NUL
character or an out-of-range integer that slipped past validation would fail in the database: no 5xx, no
undocumented status."""

from pathlib import Path

import pytest

from cli.local_cluster import LocalCluster
from simulator import SimulatorConfig, SimulatorServer
from tests.fuzzing import fuzz
from tests.integration.test_hostile_pg import providers_toml

pytestmark = pytest.mark.integration
EXAMPLES = 20  #: cases per operation and generation mode (fewer than on SQLite: the full set runs there)


def test_fuzzing_on_postgresql_finds_no_server_error(tmp_path: Path, pg_url: str, redis_url: str,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    with SimulatorServer(SimulatorConfig()) as sim, \
            LocalCluster(tmp_path, pg_url, redis_url, providers_toml(sim), workers=1, worker_threads=4) as cluster:
        key = cluster.run("keys", "create").splitlines()[-1]
        report = fuzz(cluster.base_url.removesuffix("/v1"), key, EXAMPLES)
        with capsys.disabled():
            print("\n" + report.summary())
        assert not report.failures, "\n\n".join(report.failures) + cluster.log("api")[-5000:]
        assert report.server_errors == 0 and report.cases >= EXAMPLES * report.operations
