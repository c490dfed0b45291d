"""The gateway's calls take GatewayLane (api/routes/gateway.py), past FastAPI's router: what every route gives its
callers still holds there: the request id and its log line, the URL guard, OpenAI's error envelope, and the router
for what the lane does not serve."""

import logging
import time

import pytest

from tests.api.conftest import Tenant
from tests.harness import CHAT_MODEL

JSON = "application/json"


def test_a_gateway_call_carries_a_request_id_that_the_log_names(tenant: Tenant,
                                                                 caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="api.requests"):
        answer = tenant.http.post("/chat/completions", json={
            "model": CHAT_MODEL, "messages": [{"role": "user", "content": "hi"}]}, headers={"x-request-id": "trace-7"})
        assert answer.status_code == 200 and answer.json()["choices"]
        assert answer.headers["x-request-id"] == "trace-7" and answer.headers["x-broker-provider"]
        deadline = time.monotonic() + 5  # the line is written once the answer has left (and the call is settled)
        while not any("POST /v1/chat/completions 200 trace-7" in r.getMessage() for r in caplog.records):
            assert time.monotonic() < deadline, "no log line names the call's request id"
            time.sleep(0.01)


def test_a_refused_gateway_call_answers_openais_error_envelope_with_its_request_id(tenant: Tenant) -> None:
    not_an_object = tenant.http.post("/chat/completions", content=b"[1, 2]", headers={"content-type": JSON})
    assert not_an_object.status_code == 400
    assert not_an_object.json()["error"]["type"] == "invalid_request_error"
    assert not_an_object.headers["x-request-id"].startswith("req_")
    unknown = tenant.http.post("/embeddings", json={"model": "no-such-model", "input": "x"})
    assert unknown.status_code == 404 and unknown.json()["error"]["code"] == "model_not_found"
    nul = tenant.http.post("/chat/completions?x=%00", json={"model": CHAT_MODEL, "messages": []})
    assert nul.status_code == 400 and "Null characters" in nul.json()["error"]["message"]


def test_what_the_lane_does_not_serve_takes_the_router(tenant: Tenant) -> None:
    assert tenant.http.get("/chat/completions").status_code == 405  # not a POST
    assert tenant.http.post("/chat/completions/", json={}).status_code == 307  # not the path: the router redirects

