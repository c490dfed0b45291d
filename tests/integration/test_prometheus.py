"""A real Prometheus (Debian's ``prometheus`` package) scrapes an embedded broker while it runs a batch, and every
query of the Grafana dashboard (deploy/grafana/inference-broker.json) is valid PromQL that finds its series."""

import json
import os
import re
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from simulator import SimulatorServer
from tests.harness import CHAT_MODEL, EmbeddedBroker, chat_line, embedding_line, free_port, submit, wait_for
from tests.scrape import scrape, total

pytestmark = pytest.mark.integration
DASHBOARD = Path(__file__).resolve().parents[2] / "deploy" / "grafana" / "inference-broker.json"
#: panels whose series exist only once their event happened (no lease was taken back in this run)
EVENT_ONLY = {"Leases taken back (per 5 min)"}


def _prometheus_binary() -> str:
    path = shutil.which("prometheus")
    if path is None:
        if os.environ.get("CI"):
            raise RuntimeError("prometheus must be installed in CI (.ci/run installs Debian's package)")
        pytest.skip("prometheus not installed")
    return path


@pytest.fixture
def prometheus(tmp_path: Path, broker: EmbeddedBroker) -> Iterator[str]:
    """Prometheus scraping the broker's /metrics every second; yields its base URL."""
    port = free_port()
    config = tmp_path / "prometheus.yml"
    config.write_text(json.dumps({  # YAML is a superset of JSON
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "scrape_configs": [{"job_name": "broker", "static_configs": [{"targets": [broker.server.url[7:]]}]}]}))
    log = (tmp_path / "prometheus.log").open("wb")
    proc = subprocess.Popen([_prometheus_binary(), f"--config.file={config}", f"--storage.tsdb.path={tmp_path}/tsdb",
                             f"--web.listen-address=127.0.0.1:{port}"], stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(url + "/-/ready", timeout=1, trust_env=False).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline and proc.poll() is None, (tmp_path / "prometheus.log").read_text()
            time.sleep(0.2)
        yield url
    finally:
        proc.terminate()
        proc.wait(20)
        log.close()


def _query(prometheus: str, expr: str) -> list[dict[str, Any]]:
    resp = httpx.get(prometheus + "/api/v1/query", params={"query": expr}, timeout=10, trust_env=False)
    body = resp.json()
    assert resp.status_code == 200 and body["status"] == "success", f"{expr}: {body}"
    result: list[dict[str, Any]] = body["data"]["result"]
    return result


def test_every_dashboard_query_finds_its_series(prometheus: str, broker: EmbeddedBroker,
                                                sim: SimulatorServer) -> None:
    # a hogged token budget gives 429s, which the dashboard has a panel for
    sim.config.tpm = 24 * 20 * 60
    hog = httpx.post(sim.base_url + "/chat/completions", json={
        "model": CHAT_MODEL, "messages": [{"role": "user", "content": "x"}], "max_tokens": sim.config.tpm - 50})
    assert hog.status_code == 200
    client = broker.client()
    # counters are per process: earlier tests in this one have counted too
    served = total(scrape(broker.server.url + "/metrics"), "broker_requests_total") + 60
    batches = [submit(client, [chat_line(i) for i in range(40)]),
               submit(client, [embedding_line(i) for i in range(20)], endpoint="/v1/embeddings")]
    assert all(wait_for(client, b.id, timeout=60).status == "completed" for b in batches)
    # the counters' last values are scraped, and the rate windows hold a few samples
    deadline = time.monotonic() + 30
    while not _query(prometheus, f"sum(broker_requests_total) == {served} and sum(count_over_time(up[10s])) >= 5"):
        assert time.monotonic() < deadline, _query(prometheus, "broker_requests_total")
        time.sleep(0.5)
    assert _query(prometheus, 'sum(broker_upstream_calls_total{code="429"})'), "no 429 was seen: nothing tested"

    dashboard = json.loads(DASHBOARD.read_text())
    for variable in dashboard["templating"]["list"]:
        if variable["type"] == "query":  # label_values(metric, label): what Grafana asks Prometheus for
            found = re.fullmatch(r"label_values\((\w+), (\w+)\)", variable["definition"])
            assert found is not None, variable
            metric, label = found.groups()
            values = httpx.get(f"{prometheus}/api/v1/label/{label}/values", params={"match[]": metric},
                               trust_env=False).json()["data"]
            assert values == ["sim"], variable
    empty = []
    for panel in dashboard["panels"]:
        for target in panel.get("targets", []):
            expr = target["expr"].replace("$__rate_interval", "10s").replace("$provider", ".*")
            if not _query(prometheus, expr) and panel["title"] not in EVENT_ONLY:
                empty.append(f"{panel['title']}: {expr}")
    assert not empty, "dashboard queries that found nothing:\n" + "\n".join(empty)
