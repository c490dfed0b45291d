"""Upstream failures as an SDK user sees them: injected errors, final 4xx, exhausted retries, 429s, dead hosts.

Every test runs a real embedded broker against the real simulator; what is asserted is what the official
``openai`` client reads back (batch object, output and error files) plus the simulator's own call counters.
"""

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from openai.types import Batch

from broker.catalogue import Catalogue, ModelSpec, ProviderConfig
from simulator import SimulatorServer
from tests import harness
from tests.harness import (
    CHAT_MODEL,
    EmbeddedBroker,
    MakeBroker,
    chat_ids,
    chat_line,
    free_port,
    results_once,
    submit,
    upload,
    wait_for,
)

SIM_500_BODY = {"error": {"message": "The server had an error while processing your request. Sorry about that!",
                          "type": "server_error", "param": None, "code": None}}


def test_30_percent_injected_errors_still_complete_every_line_once(sim: SimulatorServer,
                                                                   make_broker: MakeBroker) -> None:
    sim.app.apply_config({"error_rate": 0.3, "error_kinds": ["500", "503", "timeout", "drop"],
                          "hang_seconds": 2.0, "seed": 7})
    broker = make_broker(provider={"timeout_seconds": 0.5})
    client = broker.client()
    batch = wait_for(client, submit(client, [chat_line(i) for i in range(300)]).id, timeout=60)

    assert batch.status == "completed"
    out, err = results_once(client, batch, chat_ids(300))
    assert len(out) >= 285, f"only {len(out)} of 300 lines succeeded with 5 attempts at a 30% error rate"
    assert all(line["response"]["status_code"] == 200 and line["error"] is None for line in out)
    for line in err:  # a line whose every attempt failed shows its last failure
        if line["response"] is not None:
            assert line["response"]["status_code"] in (500, 503) and line["error"] is None
        else:
            assert line["error"]["code"] in ("upstream_timeout", "upstream_connection_error")
    stats = sim.stats
    # every kind was really injected, and each injected failure was retried
    assert stats.by_status.get(500, 0) > 0 and stats.by_status.get(503, 0) > 0
    assert stats.timeouts > 0 and stats.dropped > 0
    assert stats.successes == len(out)  # no upstream success was lost or stored twice
    assert stats.injected_errors >= 5 * len(err)  # a line in the error file used all its 5 attempts


def test_final_4xx_goes_to_error_file_with_upstream_body_and_is_not_retried(sim: SimulatorServer,
                                                                            broker: EmbeddedBroker) -> None:
    client = broker.client()
    bad = {3, 10, 11, 17}
    lines = [chat_line(i, "please __sim_error_400__" if i in bad else None) for i in range(20)]
    batch = wait_for(client, submit(client, lines).id)

    assert batch.status == "completed"
    out, err = results_once(client, batch, chat_ids(20))
    assert sorted(line["custom_id"] for line in err) == sorted(f"req-{i}" for i in bad)
    for line in err:
        assert line["error"] is None
        response = line["response"]
        assert response["status_code"] == 400 and response["request_id"].startswith("req_")
        assert response["body"]["error"]["code"] == "simulated_error"
        assert response["body"]["error"]["type"] == "invalid_request_error"
        assert "__sim_error_400__" in response["body"]["error"]["message"]
    assert all(line["response"]["status_code"] == 200 for line in out)
    # one call per line: a final 4xx is not retried
    assert sim.stats.requests == 20
    assert sim.stats.by_status == {200: 16, 400: 4}


def test_retries_exhausted_end_in_error_file_with_last_upstream_answer(sim: SimulatorServer,
                                                                       make_broker: MakeBroker) -> None:
    sim.app.apply_config({"error_rate": 1.0, "error_kinds": ["500"]})
    broker = make_broker(max_attempts=3)
    client = broker.client()
    batch = wait_for(client, submit(client, [chat_line(i) for i in range(10)]).id)

    assert batch.status == "completed"
    out, err = results_once(client, batch, chat_ids(10))
    assert out == []
    for line in err:
        assert line["error"] is None
        assert line["response"]["status_code"] == 500
        assert line["response"]["body"] == SIM_500_BODY
    assert sim.stats.requests == 10 * 3  # attempts are bounded by max_attempts
    assert sim.stats.by_status == {500: 30}


LINE_TOKENS = 24  #: what one ``chat_line`` costs the simulator's TPM bucket (8 prompt + 16 reserved output)


def _rate_limited_batch(sim: SimulatorServer, broker: EmbeddedBroker, n: int, lines_per_second: int) -> Batch:
    """Run ``n`` lines against an upstream whose token budget another client has just used up."""
    sim.config.tpm = LINE_TOKENS * lines_per_second * 60  # the bucket holds a minute and refills continuously
    client = broker.client()
    file_id = upload(client, [chat_line(i) for i in range(n)])
    hog = httpx.post(sim.base_url + "/chat/completions", json={
        "model": CHAT_MODEL, "messages": [{"role": "user", "content": "x"}], "max_tokens": sim.config.tpm - 50})
    assert hog.status_code == 200
    sim.app.reset()
    batch = client.batches.create(input_file_id=file_id, endpoint="/v1/chat/completions", completion_window="24h")
    return wait_for(client, batch.id, timeout=30)


def test_rate_limited_upstream_does_not_fail_lines(sim: SimulatorServer, broker: EmbeddedBroker) -> None:
    n = 60
    batch = _rate_limited_batch(sim, broker, n, lines_per_second=20)  # 3 s of budget for 60 lines

    assert batch.status == "completed"
    out, err = results_once(broker.client(), batch, chat_ids(n))
    assert err == [], f"{len(err)} lines failed on 429s the upstream asked us to retry later"
    stats = sim.stats
    assert stats.rate_limited > n, "the drained bucket must have refused many calls"
    assert stats.by_status == {200: n, 429: stats.rate_limited}
    assert stats.prompt_tokens == sum(line["response"]["body"]["usage"]["prompt_tokens"] for line in out)


def test_rate_limited_upstream_retry_after_is_honoured(sim: SimulatorServer, make_broker: MakeBroker) -> None:
    # a 429 here asks for ~0.5 s, ten times our own backoff: a broker that ignored it would call ~10x as often
    broker = make_broker(retry_base_seconds=0.01, retry_max_seconds=0.05)
    n = 6
    batch = _rate_limited_batch(sim, broker, n, lines_per_second=2)

    assert batch.status == "completed"
    assert batch.request_counts is not None and batch.request_counts.completed == n
    # each wave of waiting lines lets one through and sends the rest back for ~0.5 s: 5+4+3+2+1 refusals
    assert 0 < sim.stats.rate_limited <= sum(range(n)) + n, sim.stats.to_dict()


@pytest.fixture
def dead_upstream_broker(tmp_path: Path) -> Iterator[EmbeddedBroker]:
    """A broker whose only provider points at a loopback port nobody listens on."""
    provider = ProviderConfig(base_url=f"http://127.0.0.1:{free_port()}/v1", models={CHAT_MODEL: ModelSpec()})
    broker = EmbeddedBroker(harness.test_settings(tmp_path, max_attempts=3), Catalogue(providers={"dead": provider}))
    broker.start()
    yield broker
    broker.stop()


def test_connection_errors_fail_lines_after_bounded_attempts(dead_upstream_broker: EmbeddedBroker) -> None:
    client = dead_upstream_broker.client()
    batch = wait_for(client, submit(client, [chat_line(i) for i in range(8)]).id)

    assert batch.status == "completed"
    out, err = results_once(client, batch, chat_ids(8))
    assert out == []
    for line in err:
        assert line["response"] is None
        assert line["error"]["code"] == "upstream_connection_error"
        assert line["error"]["message"]
    from sqlalchemy import text

    with dead_upstream_broker.core.engine.connect() as conn:
        attempts = conn.execute(text("SELECT attempts FROM line WHERE batch_id = :b"), {"b": batch.id}).scalars()
        assert sorted(attempts) == [3] * 8  # bounded by max_attempts
