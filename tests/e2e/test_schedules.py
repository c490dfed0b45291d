"""Schedules end to end: the HTTP API's shapes and errors, runs that complete against the simulator, and exactly
one batch per due time across a restart and across two planners on one database."""

import dataclasses
import threading
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from datetime import time as clock
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import openai
from sqlalchemy import text

from broker.db import make_engine
from broker.planner import Planner
from tests.harness import EmbeddedBroker, chat_line, read_jsonl, upload, wait_for

CHAT = "/v1/chat/completions"
NIGHTLY = "0 2 * * *"
PARIS = ZoneInfo("Europe/Paris")
LINES = [chat_line(i) for i in range(3)]  #: what the schedules here run


def next_two_am_in_paris(after: float) -> int:
    """Worked out without croniter: the first 02:00 on the Paris clock after ``after``."""
    day = datetime.fromtimestamp(after, PARIS).date()
    return min(t for k in range(3)
               if (t := int(datetime.combine(day + timedelta(days=k), clock(2), tzinfo=PARIS).timestamp())) > after)


def error(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body: dict[str, Any] = response.json()["error"]
    assert body["type"] == "invalid_request_error"
    return body


def scheduled_batches(client: openai.OpenAI, schedule_id: str) -> list[Any]:
    return [b for b in client.batches.list(limit=100).data if (b.metadata or {}).get("schedule_id") == schedule_id]


def wait_for_runs(client: openai.OpenAI, schedule_id: str, more_than: int = 0, timeout: float = 10.0,
                  why: str = "schedule runs") -> list[Any]:
    """The schedule's batches (newest first) once there are more than ``more_than``."""
    deadline = time.monotonic() + timeout
    while len(batches := scheduled_batches(client, schedule_id)) <= more_than:
        assert time.monotonic() < deadline, (
            f"{why}: more than {more_than} runs expected within {timeout}s, got {len(batches)}; "
            f"the schedule: {client.get(f'/schedules/{schedule_id}', cast_to=object)}")
        time.sleep(0.05)
    return batches


def set_next_run(broker: EmbeddedBroker, schedule_id: str, at: int) -> None:
    with broker.core.engine.begin() as conn:
        conn.execute(text("UPDATE schedule SET next_run_at = :t WHERE id = :id"), {"t": at, "id": schedule_id})


def test_create_list_get_update_delete_with_exact_shapes_and_errors(
        make_broker: Callable[..., EmbeddedBroker]) -> None:
    broker = make_broker(workers=False, planner=False, webhook_allow_hosts=["127.0.0.1"])
    http, client = broker.http(), broker.client()
    file_id = upload(client, LINES)
    before = time.time()
    created = http.post("/schedules", json={
        "cron": NIGHTLY, "timezone": "Europe/Paris", "input_file_id": file_id, "endpoint": CHAT,
        "completion_window": "24h", "priority": "low", "route": "auto", "metadata": {"team": "search"},
        "webhook_url": "http://127.0.0.1:9/hook"})
    assert created.status_code == 200, created.text
    body = created.json()
    assert body["id"].startswith("sched_") and before - 1 <= body["created_at"] <= time.time()
    assert body == {
        "id": body["id"], "object": "schedule", "cron": NIGHTLY, "timezone": "Europe/Paris", "input_file_id": file_id,
        "input_url": None, "endpoint": CHAT, "completion_window": "24h", "priority": "low", "route": "auto",
        "webhook_url": "http://127.0.0.1:9/hook", "metadata": {"team": "search"}, "constraints": None,
        "max_cost_usd": None, "enabled": True, "created_at": body["created_at"],
        "next_run_at": next_two_am_in_paris(body["created_at"]), "last_run_at": None, "last_batch_id": None,
        "last_error": None,
    }
    second = http.post("/schedules", json={"cron": "*/15 * * * *", "input_file_id": file_id, "endpoint": CHAT,
                                           "priority": 5, "enabled": False}).json()
    assert (second["timezone"], second["priority"], second["enabled"], second["next_run_at"]) == ("UTC", 5, False, None)

    assert http.get(f"/schedules/{body['id']}").json() == body
    listed = http.get("/schedules").json()
    assert listed == {"object": "list", "data": [second, body], "first_id": second["id"], "last_id": body["id"],
                      "has_more": False}
    first_page = http.get("/schedules", params={"limit": 1}).json()
    assert [s["id"] for s in first_page["data"]] == [second["id"]] and first_page["has_more"] is True
    assert [s["id"] for s in http.get("/schedules", params={"after": second["id"]}).json()["data"]] == [body["id"]]

    resumed = http.post(f"/schedules/{second['id']}", json={"enabled": True}).json()
    assert resumed["enabled"] is True and time.time() < resumed["next_run_at"] <= time.time() + 15 * 60
    assert resumed["next_run_at"] % (15 * 60) == 0
    paused = http.post(f"/schedules/{body['id']}", json={"enabled": False}).json()
    assert (paused["enabled"], paused["next_run_at"]) == (False, None)

    assert http.delete(f"/schedules/{body['id']}").json() == {
        "id": body["id"], "object": "schedule.deleted", "deleted": True}
    assert error(http.get(f"/schedules/{body['id']}"), 404)["param"] == "id"
    assert error(http.delete(f"/schedules/{body['id']}"), 404)["param"] == "id"
    assert [s["id"] for s in http.get("/schedules").json()["data"]] == [second["id"]]


def test_invalid_schedules_are_refused_in_openais_envelope(make_broker: Callable[..., EmbeddedBroker]) -> None:
    broker = make_broker(workers=False, planner=False)
    http, client = broker.http(), broker.client()
    good = {"cron": NIGHTLY, "timezone": "Europe/Paris", "input_file_id": upload(client, LINES), "endpoint": CHAT}
    theirs = broker.new_key("someone-else")
    foreign_file = upload(broker.client(theirs), LINES)
    cases: list[tuple[dict[str, Any], int, str | None]] = [
        ({"cron": "every night"}, 400, "cron"),
        ({"cron": "0 25 * * *"}, 400, "cron"),
        ({"cron": "0 0 31 2 *"}, 400, "cron"),  # valid fields, never a date
        ({"timezone": "Europe/Atlantis"}, 400, "timezone"),
        ({"input_file_id": "file_doesnotexist"}, 404, "id"),
        ({"input_file_id": foreign_file}, 404, "id"),  # another project's file is not found
        ({"input_file_id": upload(client, LINES, purpose="assistants")}, 400, "input_file_id"),
        ({"endpoint": "/v1/images/generations"}, 400, "endpoint"),
        ({"completion_window": "10s"}, 400, "completion_window"),
        ({"priority": "asap"}, 400, "priority"),
        ({"route": "cheapest"}, 400, "route"),
        ({"metadata": {f"k{i}": "v" for i in range(16)}}, 400, "metadata"),  # 15 + schedule_id is the cap
        ({"metadata": {"schedule_id": "mine"}}, 400, "metadata"),
        ({"webhook_url": "http://169.254.169.254/latest/meta-data"}, 400, "webhook_url"),
    ]
    for change, status, param in cases:
        got = error(http.post("/schedules", json={**good, **change}), status)
        assert got["param"] == param, (change, got)
    assert error(http.post("/schedules", json={k: v for k, v in good.items() if k != "cron"}), 400)["param"] == "cron"
    assert http.post("/schedules", json={**good, "metadata": {f"k{i}": "v" for i in range(15)}}).status_code == 200
    assert len(http.get("/schedules").json()["data"]) == 1, "nothing refused was stored"

    mine = http.get("/schedules").json()["data"][0]["id"]
    other = broker.http(theirs)
    for method, path, payload in (("GET", f"/schedules/{mine}", None), ("DELETE", f"/schedules/{mine}", None),
                                  ("POST", f"/schedules/{mine}", {"enabled": False})):
        assert error(other.request(method, path, json=payload), 404)["param"] == "id", (method, path)
    assert other.get("/schedules").json()["data"] == []
    assert error(http.post(f"/schedules/{mine}", json={"cron": "nope"}), 400)["param"] == "cron"
    assert error(http.post(f"/schedules/{mine}", json={"timezone": "Nowhere"}), 400)["param"] == "timezone"
    assert http.get(f"/schedules/{mine}").json()["enabled"] is True, "the other project could not pause it"


def test_a_two_second_schedule_fires_and_its_batches_complete(make_broker: Callable[..., EmbeddedBroker]) -> None:
    broker = make_broker()
    http, client = broker.http(), broker.client()
    created = http.post("/schedules", json={
        "cron": "* * * * * */2", "input_file_id": upload(client, [chat_line(i) for i in range(4)]), "endpoint": CHAT,
        "completion_window": "1h", "priority": "high", "metadata": {"team": "search"}}).json()
    wait_for_runs(client, created["id"], more_than=1, timeout=15, why="a two-second schedule")
    paused = http.post(f"/schedules/{created['id']}", json={"enabled": False}).json()
    done = [wait_for(client, b.id) for b in scheduled_batches(client, created["id"])]

    assert [b.status for b in done] == ["completed"] * len(done)
    for batch in done:
        assert batch.metadata == {"team": "search", "schedule_id": created["id"]}
        assert (batch.endpoint, batch.completion_window, batch.input_file_id) == (CHAT, "1h", created["input_file_id"])
        assert (batch.model_extra or {})["priority"] == "high"
        output = read_jsonl(client, batch.output_file_id)
        assert sorted(line["custom_id"] for line in output) == [f"req-{i}" for i in range(4)]
    newest = done[0]
    assert paused["last_batch_id"] == newest.id and paused["last_error"] is None
    assert abs(paused["last_run_at"] - newest.created_at) <= 1
    assert len({b.created_at for b in done}) == len(done), "one batch per run"
    time.sleep(2.5)
    assert len(scheduled_batches(client, created["id"])) == len(done), "a paused schedule creates nothing"


def test_cron_schedule_fires_exactly_once_per_tick_across_a_restart(
        restartable: Callable[..., EmbeddedBroker]) -> None:
    first = restartable()
    client = first.client()
    file_id = upload(client, LINES)
    schedule = first.http().post("/schedules", json={"cron": NIGHTLY, "timezone": "Europe/Paris",
                                                   "input_file_id": file_id, "endpoint": CHAT,
                                                   "completion_window": "7d"}).json()
    first.stop()
    # the host was down for three nights: the 02:00 runs of all three were missed
    set_next_run(first, schedule["id"], next_two_am_in_paris(time.time() - 3 * 86_400))

    second = restartable()
    client = second.client()
    wait_for_runs(client, schedule["id"], why="the missed run must fire on recovery")
    time.sleep(1.0)  # twenty more planner ticks: none may make up another missed night
    [batch] = scheduled_batches(client, schedule["id"])
    assert wait_for(client, batch.id).status == "completed"
    after = second.http().get(f"/schedules/{schedule['id']}").json()
    assert after["last_batch_id"] == batch.id
    assert after["next_run_at"] == next_two_am_in_paris(after["last_run_at"]) > time.time()


def test_planners_ticking_at_once_on_one_database_create_one_batch_per_due_time(
        make_broker: Callable[..., EmbeddedBroker]) -> None:
    broker = make_broker(planner=False)
    own = broker.procs.planner()
    # as if on other hosts: planners with connection pools of their own, on the same database and queue
    engines = [make_engine(broker.settings.database_url) for _ in range(2)]
    planners = [own] + [Planner(dataclasses.replace(own.core, engine=e), own.send) for e in engines]
    http, client = broker.http(), broker.client()
    ids = [http.post("/schedules", json={"cron": NIGHTLY, "timezone": "Europe/Paris",
                                         "input_file_id": upload(client, LINES), "endpoint": CHAT}).json()["id"]
           for _ in range(2)]

    def tick_together(ticks: int) -> None:
        start = threading.Barrier(len(planners))

        def run(planner: Planner) -> None:
            start.wait()
            for _ in range(ticks):
                planner.fire_schedules()
                planner.tick()

        threads = [threading.Thread(target=run, args=(p,)) for p in planners]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)

    try:
        for run in (1, 2, 3):
            for schedule_id in ids:
                set_next_run(broker, schedule_id, int(time.time()) - 1)
            tick_together(5)
            assert [len(scheduled_batches(client, i)) for i in ids] == [run, run]
        deadline = time.monotonic() + 20
        while any(b.status != "completed" for i in ids for b in scheduled_batches(client, i)):
            assert time.monotonic() < deadline, [scheduled_batches(client, i) for i in ids]
            tick_together(1)
            time.sleep(0.02)
    finally:
        for engine in engines:
            engine.dispose()
