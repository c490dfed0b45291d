"""Webhooks end to end: real brokers, a real receiver on loopback, every event verified with the official SDK."""

import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import openai
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from simulator.serving import ThreadedServer
from tests.harness import EmbeddedBroker, chat_line, submit, wait_for

ALLOW = ["127.0.0.1"]  #: the receiver is on loopback, which the SSRF guard refuses unless allow-listed
QUICK = [0.05, 0.05, 0.05, 0.05, 0.05]  #: a retry schedule for tests: five quick retries


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    at: float
    answered: int


@dataclass
class Receiver:
    """Records every POST to ``/hook/{name}``; ``script[name]`` lists answers (status, headers) before 200s."""

    script: dict[str, list[tuple[int, dict[str, str]]]] = field(default_factory=dict)
    received: list[Received] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    server: ThreadedServer | None = None

    async def hook(self, request: Request) -> Response:
        name, body = request.path_params["name"], await request.body()
        with self.lock:
            queue = self.script.get(name) or []
            status, headers = queue.pop(0) if queue else (200, {})
            self.received.append(Received(name, dict(request.headers), body, time.time(), status))
        return Response(status_code=status, headers=headers)

    def url(self, name: str) -> str:
        assert self.server is not None
        return f"{self.server.url}/hook/{name}"

    def at(self, name: str) -> list[Received]:
        with self.lock:
            return [r for r in self.received if r.path == name]

    def wait(self, name: str, n: int, timeout: float = 15.0) -> list[Received]:
        deadline = time.monotonic() + timeout
        while len(got := self.at(name)) < n:
            assert time.monotonic() < deadline, f"{name}: {len(got)} of {n} deliveries after {timeout}s"
            time.sleep(0.02)
        return got


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    rec = Receiver()
    rec.server = ThreadedServer(Starlette(routes=[Route("/hook/{name}", rec.hook, methods=["POST"])]),
                                name="webhook-receiver").start()
    yield rec
    rec.server.stop()


def verify(broker: EmbeddedBroker, got: Received, secret: str) -> Any:
    """The event as the official SDK unwraps it; raises unless the signature matches ``secret``."""
    event = broker.client().webhooks.unwrap(got.body, got.headers, secret=secret)
    assert event.id == got.headers["webhook-id"]
    return event


def deliveries(http: httpx.Client, path: str = "/webhooks/deliveries") -> list[dict[str, Any]]:
    response = http.get(path)
    assert response.status_code == 200, response.text
    return list(response.json()["data"])


def test_batch_webhook_url_and_registered_endpoint_both_get_the_signed_event(
        make_broker: Callable[..., EmbeddedBroker], receiver: Receiver) -> None:
    broker = make_broker(webhook_allow_hosts=ALLOW)
    http = broker.http()
    created = http.post("/webhooks", json={"url": receiver.url("endpoint")})
    assert created.status_code == 200, created.text
    endpoint = created.json()
    assert endpoint["object"] == "webhook_endpoint" and endpoint["enabled"] is True
    assert endpoint["secret"].startswith("whsec_") and endpoint["events"] == [
        "batch.completed", "batch.failed", "batch.expired", "batch.cancelled"]
    assert "secret" not in http.get(f"/webhooks/{endpoint['id']}").json()
    assert all("secret" not in e for e in http.get("/webhooks").json()["data"])
    project_secret = http.get("/webhooks/secret").json()
    assert project_secret["object"] == "webhook_secret" and project_secret["secret"].startswith("whsec_")
    assert http.get("/webhooks/secret").json() == project_secret, "the default secret is created once"

    client = broker.client()
    batch = submit(client, [chat_line(i) for i in range(3)], webhook_url=receiver.url("batch"))
    assert wait_for(client, batch.id).status == "completed"

    [to_batch], [to_endpoint] = receiver.wait("batch", 1), receiver.wait("endpoint", 1)
    for got, secret, wrong in ((to_batch, project_secret["secret"], endpoint["secret"]),
                               (to_endpoint, endpoint["secret"], project_secret["secret"])):
        event = verify(broker, got, secret)
        assert (event.type, event.object, event.data.id) == ("batch.completed", "event", batch.id)
        assert event.id.startswith("evt_") and abs(event.created_at - time.time()) < 30
        with pytest.raises(openai.InvalidWebhookSignatureError):
            broker.client().webhooks.unwrap(got.body, got.headers, secret=wrong)
    assert to_batch.body == to_endpoint.body, "one event, the same body and id to every target"
    [logged] = deliveries(http, f"/webhooks/{endpoint['id']}/deliveries")
    assert (logged["status"], logged["attempts"], logged["last_status_code"]) == ("delivered", 1, 200)
    assert logged["event_id"] == to_endpoint.headers["webhook-id"] and logged["delivered_at"]

    again = http.post(f"/webhooks/deliveries/{logged['id']}/redeliver")
    assert again.status_code == 200 and again.json()["id"] != logged["id"]
    _, resent = receiver.wait("endpoint", 2)
    assert resent.body == to_endpoint.body and resent.headers["webhook-id"] == to_endpoint.headers["webhook-id"]
    assert verify(broker, resent, endpoint["secret"]).data.id == batch.id
    assert http.post("/webhooks/deliveries/whdel_unknown/redeliver").status_code == 404


def test_events_follow_the_batch_outcome_and_the_endpoint_subscription(
        make_broker: Callable[..., EmbeddedBroker], receiver: Receiver) -> None:
    broker = make_broker(webhook_allow_hosts=ALLOW)
    http = broker.http()
    endpoint = http.post("/webhooks", json={"url": receiver.url("ops"),
                                            "events": ["batch.failed", "batch.cancelled"]}).json()
    client = broker.client()
    done = submit(client, [chat_line(1)])
    bad = submit(client, [chat_line(1), {"custom_id": "x", "method": "POST", "url": "/v1/embeddings", "body": {}}])
    cancelled = submit(client, [chat_line(i) for i in range(50)], not_before=int(time.time()) + 3600)
    client.batches.cancel(cancelled.id)
    assert [wait_for(client, b.id).status for b in (done, bad, cancelled)] == ["completed", "failed", "cancelled"]

    got = receiver.wait("ops", 2)
    events = [verify(broker, g, endpoint["secret"]) for g in got]
    assert {e.type: e.data.id for e in events} == {"batch.failed": bad.id, "batch.cancelled": cancelled.id}
    assert sorted(d["event_type"] for d in deliveries(http)) == ["batch.cancelled", "batch.failed"]


def test_receiver_failing_three_times_gets_exactly_one_success_with_the_same_webhook_id(
        make_broker: Callable[..., EmbeddedBroker], receiver: Receiver) -> None:
    broker = make_broker(webhook_allow_hosts=ALLOW, webhook_retry_schedule=QUICK)
    receiver.script["flaky"] = [(500, {}), (500, {}), (500, {})]
    receiver.script["busy"] = [(429, {"Retry-After": "1"})]
    client = broker.client()
    secret = broker.http().get("/webhooks/secret").json()["secret"]
    flaky = submit(client, [chat_line(1)], webhook_url=receiver.url("flaky"))
    busy = submit(client, [chat_line(1)], webhook_url=receiver.url("busy"))
    for batch in (flaky, busy):
        wait_for(client, batch.id)

    got = receiver.wait("flaky", 4)
    time.sleep(0.5)  # five more quick retries would fit here if the success had not stopped them
    got = receiver.at("flaky")
    assert [g.answered for g in got] == [500, 500, 500, 200]
    assert len({g.headers["webhook-id"] for g in got}) == 1
    assert all(verify(broker, g, secret).data.id == flaky.id for g in got)
    first, again = receiver.wait("busy", 2)
    assert again.at - first.at >= 0.9, "Retry-After: 1 outweighs the 0.05 s schedule step"
    logged = {d["url"]: d for d in deliveries(broker.http())}
    assert (logged[receiver.url("flaky")]["status"], logged[receiver.url("flaky")]["attempts"]) == ("delivered", 4)


def test_410_gone_disables_the_endpoint_and_stops(make_broker: Callable[..., EmbeddedBroker],
                                                  receiver: Receiver) -> None:
    broker = make_broker(webhook_allow_hosts=ALLOW, webhook_retry_schedule=QUICK)
    receiver.script["gone"] = [(410, {})] * 10
    http = broker.http()
    endpoint = http.post("/webhooks", json={"url": receiver.url("gone")}).json()
    client = broker.client()
    wait_for(client, submit(client, [chat_line(1)]).id)
    receiver.wait("gone", 1)
    deadline = time.monotonic() + 10
    while http.get(f"/webhooks/{endpoint['id']}").json()["enabled"]:
        assert time.monotonic() < deadline, "a 410 must disable the endpoint"
        time.sleep(0.05)
    state = http.get(f"/webhooks/{endpoint['id']}").json()
    assert "410" in state["disabled_reason"]
    [logged] = deliveries(http, f"/webhooks/{endpoint['id']}/deliveries")
    assert (logged["status"], logged["attempts"], logged["last_status_code"]) == ("failed", 1, 410)

    wait_for(client, submit(client, [chat_line(2)]).id)
    time.sleep(0.3)
    assert len(receiver.at("gone")) == 1, "no retry after 410, and a disabled endpoint gets no new events"
    assert len(deliveries(http, f"/webhooks/{endpoint['id']}/deliveries")) == 1
    refused = http.post(f"/webhooks/deliveries/{logged['id']}/redeliver")
    assert refused.status_code == 409 and refused.json()["error"]["code"] == "webhook_endpoint_disabled"


def test_private_addresses_are_refused_at_registration_and_batch_create(
        make_broker: Callable[..., EmbeddedBroker], receiver: Receiver) -> None:
    broker = make_broker(webhook_allow_hosts=ALLOW, workers=False, planner=False)
    http = broker.http()
    for url in ("http://10.0.0.1/hook", "http://169.254.169.254/latest/meta-data", "http://[::1]:80/",
                "http://100.64.1.1/", "ftp://example.com/hook", "http://[fd00::1]/hook"):
        response = http.post("/webhooks", json={"url": url})
        assert response.status_code == 400, url
        error = response.json()["error"]
        assert (error["param"], error["type"], error["code"]) == ("url", "invalid_request_error", "invalid_webhook_url")
    assert http.get("/webhooks").json()["data"] == []
    with pytest.raises(openai.BadRequestError) as info:
        submit(broker.client(), [chat_line(1)], webhook_url="http://169.254.169.254/latest/meta-data")
    assert info.value.param == "webhook_url" and "link-local" in info.value.message
    assert "BROKER_WEBHOOK_ALLOW_HOSTS" in info.value.message  # the refusal says how an operator allows a host
    assert http.post("/webhooks", json={"url": receiver.url("ok")}).status_code == 200  # allow-listed loopback


def test_endpoints_are_scoped_to_their_project(make_broker: Callable[..., EmbeddedBroker],
                                               receiver: Receiver) -> None:
    broker = make_broker(webhook_allow_hosts=ALLOW, workers=False, planner=False)
    mine, theirs = broker.http(), broker.http(broker.new_key("someone-else"))
    endpoint = mine.post("/webhooks", json={"url": receiver.url("a"), "events": ["batch.completed"]}).json()
    for method, path in (("GET", f"/webhooks/{endpoint['id']}"), ("DELETE", f"/webhooks/{endpoint['id']}"),
                         ("GET", f"/webhooks/{endpoint['id']}/deliveries")):
        response = theirs.request(method, path)
        assert response.status_code == 404 and response.json()["error"]["param"] == "id", (method, path)
    assert theirs.get("/webhooks").json()["data"] == []
    assert theirs.get("/webhooks/secret").json() != mine.get("/webhooks/secret").json()
    assert mine.post("/webhooks", json={"url": receiver.url("b"), "events": ["batch.started"]}).status_code == 400
    assert mine.delete(f"/webhooks/{endpoint['id']}").json() == {
        "id": endpoint["id"], "object": "webhook_endpoint.deleted", "deleted": True}
    assert mine.get(f"/webhooks/{endpoint['id']}").status_code == 404


def test_refused_again_at_delivery_when_the_allow_list_no_longer_covers_it(
        restartable: Callable[..., EmbeddedBroker], receiver: Receiver) -> None:
    first = restartable(webhook_allow_hosts=[*ALLOW, "10.0.0.0/8", "169.254.0.0/16"])
    http = first.http()
    endpoint = http.post("/webhooks", json={"url": "http://10.0.0.1:9/hook"}).json()
    client = first.client()
    batch = submit(client, [chat_line(i) for i in range(2)], webhook_url="http://169.254.169.254/hook",
                   not_before=int(time.time()) + 3600)  # nothing happens until the operator has tightened the list
    first.stop()

    second = restartable(webhook_allow_hosts=ALLOW, webhook_retry_schedule=QUICK)
    http = second.http()
    client = second.client()
    client.batches.cancel(batch.id)
    assert wait_for(client, batch.id).status == "cancelled"
    deadline = time.monotonic() + 10
    logged = deliveries(http)
    while len(logged) < 2 or any(d["status"] == "pending" for d in logged):
        assert time.monotonic() < deadline, logged
        time.sleep(0.05)
        logged = deliveries(http)
    by_url = {d["url"]: d for d in logged}
    for url, address in (("http://10.0.0.1:9/hook", "10.0.0.1, a private"),
                         ("http://169.254.169.254/hook", "169.254.169.254, a link-local")):
        assert by_url[url]["status"] == "failed" and by_url[url]["attempts"] == 1
        assert by_url[url]["last_error"].startswith("refused:") and address in by_url[url]["last_error"]
    assert by_url["http://10.0.0.1:9/hook"]["endpoint_id"] == endpoint["id"]


def test_outbox_survives_a_restart_mid_retry(restartable: Callable[..., EmbeddedBroker],
                                             receiver: Receiver) -> None:
    retry_in = [4.0]  # long enough to stop the first broker before the retry is due
    first = restartable(webhook_allow_hosts=ALLOW, webhook_retry_schedule=retry_in)
    receiver.script["hook"] = [(503, {})]
    client = first.client()
    batch = submit(client, [chat_line(1)], webhook_url=receiver.url("hook"))
    wait_for(client, batch.id)
    [failed] = receiver.wait("hook", 1)
    first.stop()
    stopped_at = time.time()
    assert len(receiver.at("hook")) == 1, "the first broker must not have retried before it stopped"

    second = restartable(webhook_allow_hosts=ALLOW, webhook_retry_schedule=retry_in)
    [pending] = deliveries(second.http())
    assert (pending["status"], pending["attempts"], pending["last_status_code"]) == ("pending", 1, 503)
    _, delivered = receiver.wait("hook", 2, timeout=15)
    assert delivered.at > stopped_at and delivered.answered == 200
    assert delivered.headers["webhook-id"] == failed.headers["webhook-id"] == pending["event_id"]
    secret = second.http().get("/webhooks/secret").json()["secret"]
    assert verify(second, delivered, secret).data.id == batch.id
    time.sleep(0.3)
    [done] = deliveries(second.http())
    assert (done["status"], done["attempts"], len(receiver.at("hook"))) == ("delivered", 2, 2)
