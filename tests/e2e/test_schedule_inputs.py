"""Schedules whose input comes from a URL or a folder at each run (``input_url``), end to end: a real file server
on loopback, real folders, and the batches each run creates completing against the simulator."""

import os
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from simulator.serving import ThreadedServer
from tests.e2e.test_schedules import CHAT, NIGHTLY, error, scheduled_batches, set_next_run, wait_for_runs
from tests.harness import EmbeddedBroker, chat_line, jsonl, read_jsonl, upload, wait_for

LOOPBACK = ["127.0.0.1"]  #: the file server is on loopback, which the SSRF guard refuses unless allow-listed


@dataclass
class FileServer:
    """Serves ``files[name]`` at ``GET /files/{name}`` (404 when absent), streamed in chunks; records each GET."""

    files: dict[str, bytes] = field(default_factory=dict)
    hits: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    server: ThreadedServer | None = None

    async def get(self, request: Request) -> Response:
        name = request.path_params["name"]
        with self.lock:
            self.hits.append(name)
            body = self.files.get(name)
        if body is None:
            return Response("not here", status_code=404)

        async def chunks() -> Any:
            for i in range(0, len(body), 1000):
                yield body[i:i + 1000]

        return StreamingResponse(chunks(), media_type="application/jsonl")

    def url(self, name: str) -> str:
        assert self.server is not None
        return f"{self.server.url}/files/{name}"


@pytest.fixture
def files() -> Iterator[FileServer]:
    served = FileServer()
    served.server = ThreadedServer(Starlette(routes=[Route("/files/{name}", served.get)]), name="file-server").start()
    yield served
    served.server.stop()


def lines(prefix: str, n: int) -> bytes:
    return jsonl([{**chat_line(i), "custom_id": f"{prefix}-{i}"} for i in range(n)])


def write(path: Path, content: bytes, mtime: float) -> Path:
    path.write_bytes(content)
    os.utime(path, (mtime, mtime))
    return path


def run_now(broker: EmbeddedBroker, schedule_id: str, batches_before: int, timeout: float = 10.0) -> Any:
    """Make the schedule due, wait for the batch its run creates, and return it once it ends."""
    client = broker.client()
    set_next_run(broker, schedule_id, int(time.time()) - 1)
    return wait_for(client, wait_for_runs(client, schedule_id, more_than=batches_before, timeout=timeout)[0].id)


def test_a_folder_schedule_runs_the_newest_jsonl_file_at_each_run(
        make_broker: Callable[..., EmbeddedBroker], tmp_path: Path) -> None:
    root = tmp_path / "drops"
    folder = root / "nightly"
    folder.mkdir(parents=True)
    t = time.time()
    write(folder / "monday.jsonl", lines("monday", 2), t - 300)
    write(folder / "tuesday.jsonl", lines("tuesday", 3), t - 200)
    write(folder / ".wednesday.jsonl", lines("partial", 1), t - 100)  # still being written: hidden, ignored
    write(folder / "notes.txt", b"not a batch", t - 50)
    broker = make_broker(schedule_folders=[root])
    http, client = broker.http(), broker.client()
    created = http.post("/schedules", json={"cron": NIGHTLY, "input_url": folder.as_uri(), "endpoint": CHAT,
                                            "completion_window": "1h"})
    assert created.status_code == 200, created.text
    schedule = created.json()
    assert (schedule["input_file_id"], schedule["input_url"]) == (None, folder.as_uri())

    first = run_now(broker, schedule["id"], 0)
    assert first.status == "completed"
    assert sorted(line["custom_id"] for line in read_jsonl(client, first.output_file_id)) == [
        "tuesday-0", "tuesday-1", "tuesday-2"]
    stored = client.files.retrieve(first.input_file_id)
    assert (stored.filename, stored.purpose) == ("tuesday.jsonl", "batch")
    assert client.files.content(first.input_file_id).read() == lines("tuesday", 3)
    assert (folder / "tuesday.jsonl").exists(), "the folder's files are copied, never moved"

    write(folder / "wednesday.jsonl", lines("wednesday", 1), time.time())
    second = run_now(broker, schedule["id"], 1)
    assert [line["custom_id"] for line in read_jsonl(client, second.output_file_id)] == ["wednesday-0"]
    assert second.input_file_id != first.input_file_id
    after = http.get(f"/schedules/{schedule['id']}").json()
    assert (after["last_batch_id"], after["last_error"], after["input_file_id"]) == (second.id, None, None)

    for f in folder.glob("*.jsonl"):
        f.unlink()
    set_next_run(broker, schedule["id"], int(time.time()) - 1)
    failed = wait_for_error(http, schedule["id"])
    assert failed["last_error"] == f"input_url: no *.jsonl file in {folder.resolve()}"
    assert len(scheduled_batches(client, schedule["id"])) == 2, "a run with no file creates no batch"


def wait_for_error(http: httpx.Client, schedule_id: str, after_run: int | None = None,
                   timeout: float = 10.0) -> dict[str, Any]:
    """The schedule once a run later than ``after_run`` recorded an error."""
    deadline = time.monotonic() + timeout
    while True:
        body: dict[str, Any] = http.get(f"/schedules/{schedule_id}").json()
        if body["last_error"] and body["last_run_at"] is not None and body["last_run_at"] != after_run:
            return body
        assert time.monotonic() < deadline, body
        time.sleep(0.05)


def test_a_url_schedule_downloads_its_file_at_each_run(make_broker: Callable[..., EmbeddedBroker],
                                                        files: FileServer) -> None:
    files.files["nightly.jsonl"] = lines("night", 4)
    broker = make_broker(schedule_url_allow_hosts=LOOPBACK)
    http, client = broker.http(), broker.client()
    url = files.url("nightly.jsonl") + "?signature=s3cret"
    schedule = http.post("/schedules", json={"cron": NIGHTLY, "input_url": url, "endpoint": CHAT,
                                             "completion_window": "1h", "metadata": {"team": "search"}}).json()
    assert schedule["input_url"] == url and files.hits == [], "nothing is fetched before a run"

    batch = run_now(broker, schedule["id"], 0)
    assert batch.status == "completed" and batch.metadata == {"team": "search", "schedule_id": schedule["id"]}
    assert sorted(line["custom_id"] for line in read_jsonl(client, batch.output_file_id)) == [
        f"night-{i}" for i in range(4)]
    assert client.files.retrieve(batch.input_file_id).filename == "nightly.jsonl"
    assert files.hits == ["nightly.jsonl"], "one download per run"

    files.files["nightly.jsonl"] = lines("later", 2)
    again = run_now(broker, schedule["id"], 1)
    assert sorted(line["custom_id"] for line in read_jsonl(client, again.output_file_id)) == ["later-0", "later-1"]


def test_a_url_answering_404_records_why_and_the_schedule_fires_again_at_its_next_time(
        make_broker: Callable[..., EmbeddedBroker], files: FileServer) -> None:
    broker = make_broker(schedule_url_allow_hosts=LOOPBACK)
    http, client = broker.http(), broker.client()
    url = files.url("late.jsonl") + "?signature=s3cret"
    schedule = http.post("/schedules", json={"cron": "* * * * * */2", "input_url": url, "endpoint": CHAT,
                                             "completion_window": "1h"}).json()
    first = wait_for_error(http, schedule["id"])
    assert first["last_error"] == f"input_url: GET {files.url('late.jsonl')} answered HTTP 404 Not Found"
    assert "s3cret" not in first["last_error"], "a signed URL's query stays out of last_error"
    assert first["enabled"] and first["next_run_at"] > first["last_run_at"] and first["last_batch_id"] is None

    second = wait_for_error(http, schedule["id"], after_run=first["last_run_at"])
    assert second["last_run_at"] > first["last_run_at"] and "HTTP 404" in second["last_error"]
    assert scheduled_batches(client, schedule["id"]) == []
    with files.lock:
        runs = len(files.hits)
    assert 2 <= runs <= (int(time.time()) - first["last_run_at"]) // 2 + 2, "one fetch per run, not per tick"

    files.files["late.jsonl"] = lines("late", 2)
    batches = wait_for_runs(client, schedule["id"], why="the file is there now")
    http.post(f"/schedules/{schedule['id']}", json={"enabled": False})
    assert wait_for(client, batches[-1].id).status == "completed"
    assert http.get(f"/schedules/{schedule['id']}").json()["last_error"] is None


def test_input_urls_are_checked_when_the_schedule_is_created(
        make_broker: Callable[..., EmbeddedBroker], tmp_path: Path, files: FileServer) -> None:
    root, outside = tmp_path / "drops", tmp_path / "elsewhere"
    (root / "nightly").mkdir(parents=True)
    outside.mkdir()
    (root / "escape").symlink_to(outside)
    broker = make_broker(workers=False, planner=False, schedule_folders=[root])
    http, client = broker.http(), broker.client()
    stored = upload(client, [chat_line(0)])
    good = {"cron": NIGHTLY, "endpoint": CHAT}
    cases: list[tuple[dict[str, Any], str, str]] = [
        ({"input_url": files.url("x.jsonl")}, "input_url", "a loopback address"),
        ({"input_url": "http://10.1.2.3/x.jsonl"}, "input_url", "a private address"),
        ({"input_url": outside.as_uri()}, "input_url", "outside the folders schedules may read"),
        ({"input_url": (root / "escape").as_uri()}, "input_url", "outside the folders schedules may read"),
        ({"input_url": (root / "missing").as_uri()}, "input_url", "is not a folder"),
        ({"input_url": "file://otherhost/srv/drops"}, "input_url", "no host"),
        ({"input_url": "ftp://example.com/x.jsonl"}, "input_url", "scheme 'ftp' is not supported"),
        ({"input_url": (root / "nightly").as_uri(), "input_file_id": stored}, "input_url", "not both"),
        ({}, "input_file_id", "Missing required parameter"),
        ({"input_url": (root / "nightly").as_uri(), "endpoint": "/v1/images"}, "endpoint", "Invalid endpoint"),
    ]
    for change, param, message in cases:
        got = error(http.post("/schedules", json={**good, **change}), 400)
        assert (got["param"], message in got["message"]) == (param, True), (change, got)
    assert "BROKER_SCHEDULE_URL_ALLOW_HOSTS" in error(
        http.post("/schedules", json={**good, "input_url": files.url("x.jsonl")}), 400)["message"]
    assert http.get("/schedules").json()["data"] == [], "nothing refused was stored"
    assert [f.id for f in client.files.list().data] == [stored], "checking a template stores no file"

    assert http.post("/schedules", json={**good, "input_url": (root / "nightly").as_uri()}).status_code == 200
    no_folders = make_broker(workers=False, planner=False)
    refused = error(no_folders.http().post("/schedules", json={**good, "input_url": (root / "nightly").as_uri()}), 400)
    assert "BROKER_SCHEDULE_FOLDERS" in refused["message"]
    assert files.hits == [], "checks resolve and compare; they never download"
