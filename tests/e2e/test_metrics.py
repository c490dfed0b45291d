"""``GET /metrics`` of the embedded default (``broker serve``: API, planner and workers in one process): it parses
with prometheus-client's parser, and its counters agree with what the API and the simulator report."""

import json
import re
import time
from pathlib import Path

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from simulator import SimulatorServer
from simulator.serving import ThreadedServer
from tests.harness import (
    CHAT_MODEL,
    EMBEDDING_MODEL,
    EmbeddedBroker,
    MakeBroker,
    chat_line,
    embedding_line,
    read_jsonl,
    submit,
    upload,
    wait_for,
)
from tests.scrape import delta, scrape, series_names, total

DASHBOARD = Path(__file__).resolve().parents[2] / "deploy" / "grafana" / "inference-broker.json"
LINE_TOKENS = 24  #: what one ``chat_line`` costs the simulator's TPM bucket (8 prompt + 16 reserved output)
#: attempts per line in the counters test: more than the 5xx its simulator injects in the whole run (seed 11 draws 21
#: among the ~80 calls it answers), so no line fails for good however the errors fall; with the default 5 a line that
#: met a dense run of them while the others waited out 429s failed now and then (59 chat 200s of 60)
ATTEMPTS = 30


def _usage(broker: EmbeddedBroker) -> dict[str, float]:
    report = broker.client().get("/usage", cast_to=object)
    assert isinstance(report, dict)
    rows = report["data"]
    return {"requests": report["total_requests"], "cost": report["total_cost_usd"],
            "input": sum(r["input_tokens"] for r in rows), "output": sum(r["output_tokens"] for r in rows)}


def test_counters_match_usage_batches_and_the_upstreams_own_count(sim: SimulatorServer,
                                                                   make_broker: MakeBroker) -> None:
    broker = make_broker(max_attempts=ATTEMPTS)
    url = broker.server.url + "/metrics"
    client = broker.client()
    before = scrape(url)
    # an upstream that fails one call in five (500 or 503) and whose token budget another client has used up (429s)
    sim.app.apply_config({"error_rate": 0.2, "error_kinds": ["500", "503"], "seed": 11})
    sim.config.tpm = LINE_TOKENS * 40 * 60
    chat_file = upload(client, [chat_line(i) for i in range(60)])
    hog = httpx.post(sim.base_url + "/chat/completions", json={
        "model": CHAT_MODEL, "messages": [{"role": "user", "content": "x"}], "max_tokens": sim.config.tpm - 50})
    assert hog.status_code == 200
    sim.app.reset()
    chat = client.batches.create(input_file_id=chat_file, endpoint="/v1/chat/completions", completion_window="24h")
    embeddings = submit(client, [embedding_line(i) for i in range(40)], endpoint="/v1/embeddings")
    chat, embeddings = wait_for(client, chat.id, timeout=60), wait_for(client, embeddings.id, timeout=60)
    assert (chat.status, embeddings.status) == ("completed", "completed")

    after = scrape(url)
    got = delta(after, before)
    usage = _usage(broker)
    stats = sim.stats
    assert stats.by_status.get(429, 0) > 0 and stats.by_status.get(500, 0) + stats.by_status.get(503, 0) > 0
    assert stats.injected_errors < ATTEMPTS  # what makes every line succeed, below
    # upstream calls by outcome: the simulator's own count, status by status
    for status, n in stats.by_status.items():
        assert total(got, "broker_upstream_calls_total", provider="sim", code=str(status)) == n, status
    calls = total(got, "broker_upstream_calls_total", provider="sim")
    assert calls == stats.requests
    assert total(got, "broker_upstream_call_seconds_count", provider="sim") == calls
    assert total(got, "broker_upstream_calls_total", model=CHAT_MODEL, route="realtime", code="200") == 60
    assert 0 < total(got, "broker_upstream_calls_total", model=EMBEDDING_MODEL, code="200") < 40  # packed calls
    assert total(got, "broker_upstream_in_flight", provider="sim") == 0
    # requests served, tokens and cost: what GET /v1/usage and the batches say
    counts = [b.request_counts for b in (chat, embeddings)]
    assert total(got, "broker_requests_total", provider="sim") == usage["requests"] == sum(
        c.completed for c in counts if c is not None) == 100
    assert total(got, "broker_tokens_total", direction="input") == usage["input"] == stats.prompt_tokens
    assert total(got, "broker_tokens_total", direction="output") == usage["output"] == stats.completion_tokens
    assert total(got, "broker_cost_usd_total", route="realtime") == pytest.approx(usage["cost"], rel=1e-9)
    assert usage["cost"] > 0
    assert total(got, "broker_planner_tick_seconds_count") > 0
    # gauges read from SQL: this broker's database only
    assert total(after, "broker_batches", status="completed") == 2
    assert total(after, "broker_batch_lines_ended", status="completed") == 100
    assert total(after, "broker_lines", provider="sim") == 0  # nothing pending, leased or batched any more
    assert total(after, "broker_provider_limit_configured", provider="sim", limit="max_concurrency") == \
        broker.catalogue.providers["sim"].max_concurrency
    assert total(after, "broker_queue_messages", provider="sim") == 0


def test_open_lines_and_limits_in_force_are_read_from_sql(sim: SimulatorServer, make_broker: MakeBroker) -> None:
    # no workers: released lines stay leased, the rest pending, and no worker holds a lower limit
    broker = make_broker(provider={"max_concurrency": 4, "rpm": 600}, workers=False)
    client = broker.client()
    batch = wait_for(client, submit(client, [chat_line(i) for i in range(10)]).id, statuses=("in_progress",))

    page = scrape(broker.server.url + "/metrics")
    assert total(page, "broker_lines", provider="sim", status="queued") == 4  # max_concurrency leased
    assert total(page, "broker_lines", provider="sim", status="pending") == 10 - 4
    assert total(page, "broker_lines", provider="sim", status="batched") == 0
    assert total(page, "broker_batches", status="in_progress") == 1
    assert total(page, "broker_provider_limit_in_force", provider="sim", limit="rpm") == 600
    assert ("broker_provider_limit_configured", (("limit", "tpm"), ("provider", "sim"))) not in page
    assert total(page, "broker_queue_messages", provider="sim") >= 1  # nobody takes the messages
    assert batch.status == "in_progress"


def test_leases_taken_back_are_counted(make_broker: MakeBroker) -> None:
    # no workers: every lease expires; a line gets two, then fails worker_lost
    broker = make_broker(provider={"max_concurrency": 4}, workers=False, lease_seconds=0.2, max_attempts=2)
    url = broker.server.url + "/metrics"
    before = scrape(url)
    client = broker.client()
    batch = wait_for(client, submit(client, [chat_line(i) for i in range(6)]).id, timeout=30)

    got = delta(scrape(url), before)
    assert batch.request_counts is not None and batch.request_counts.failed == 6
    assert {line["error"]["code"] for line in read_jsonl(client, batch.error_file_id)} == {"worker_lost"}
    assert total(got, "broker_leases_taken_back_total", provider="sim", outcome="retried") == 6
    assert total(got, "broker_leases_taken_back_total", provider="sim", outcome="failed") == 6


def test_webhook_outbox_backlog(make_broker: MakeBroker) -> None:
    attempts: list[float] = []

    async def unavailable(request: Request) -> Response:
        attempts.append(time.time())
        return Response(status_code=503)

    receiver = ThreadedServer(Starlette(routes=[Route("/hook", unavailable, methods=["POST"])]),
                              name="webhook-receiver").start()
    try:
        broker = make_broker(webhook_allow_hosts=["127.0.0.1"], webhook_retry_schedule=[0.0, 3600.0])
        client = broker.client()
        url = broker.server.url + "/metrics"
        assert total(scrape(url), "broker_webhook_outbox_pending") == 0
        started = time.time()
        batch = wait_for(client, submit(client, [chat_line(0)], webhook_url=receiver.url + "/hook").id)
        assert batch.status == "completed"
        deadline = time.monotonic() + 15
        while not attempts:
            assert time.monotonic() < deadline, "the batch.completed event was never sent"
            time.sleep(0.05)
        time.sleep(0.2)  # the 503 is recorded: the event waits for its retry in an hour

        page = scrape(url)
        assert total(page, "broker_webhook_outbox_pending") == 1
        assert 0 <= total(page, "broker_webhook_outbox_oldest_seconds") <= time.time() - started + 1
    finally:
        receiver.stop()


def test_the_grafana_dashboard_queries_only_series_the_broker_serves(broker: EmbeddedBroker) -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    exprs = [target["expr"] for panel in dashboard["panels"] for target in panel.get("targets", [])]
    used = {name for expr in exprs for name in re.findall(r"\bbroker_[a-z_]+", expr)}
    served = series_names(broker.server.url + "/metrics")
    assert len(exprs) > 20 and used
    assert used <= served, f"the dashboard queries series nobody serves: {sorted(used - served)}"
