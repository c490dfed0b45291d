"""A schedule's ``input_url`` below the API: downloads and folder copies (size cap, redirects, links out of the
allowed folders), and firing URL schedules in SQL (no transaction held while downloading, fetches per tick)."""

import asyncio
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from sqlalchemy import Engine, text
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response, StreamingResponse
from starlette.routing import Route

from broker.auth import get_or_create_project
from broker.core import Core
from broker.db import make_engine, session_scope
from broker.migrate import upgrade
from broker.schedules.manage import create_schedule
from broker.schedules.runner import fire_due
from broker.schedules.sources import InputSources, SourceError
from broker.settings import Settings
from broker.storage import FileStore
from schemas.schedules import ScheduleCreate
from simulator.serving import ThreadedServer
from tests import harness
from tests.harness import chat_line
from tests.unit.test_schedules import CATALOGUE, batches_by_schedule, make_due, schedule

CHUNK = 1000
GATE = threading.Event()  #: ``/gated`` answers once this is set


async def chunked(_: Request) -> Response:
    async def body() -> Any:
        for _ in range(10):
            yield b"x" * CHUNK

    return StreamingResponse(body())  # no content-length: only counting the bytes can stop it


async def sized(_: Request) -> Response:
    return Response(b"x" * 10 * CHUNK)


async def moved(_: Request) -> Response:
    return RedirectResponse("/chunked", status_code=302)


async def gated(_: Request) -> Response:
    await asyncio.to_thread(GATE.wait, 10)
    return Response(b"".join(orjson.dumps(chat_line(i)) + b"\n" for i in range(2)))


@pytest.fixture(scope="module")
def server() -> Iterator[ThreadedServer]:
    app = Starlette(routes=[Route("/chunked", chunked), Route("/sized", sized), Route("/moved", moved),
                            Route("/gated/{name}", gated)])
    with ThreadedServer(app, name="input-server") as running:
        yield running


def sources(max_bytes: int, *folders: Path) -> InputSources:
    return InputSources.from_settings(Settings(schedule_url_allow_hosts=["127.0.0.1"], schedule_folders=list(folders),
                                               max_upload_bytes=max_bytes))


@pytest.mark.parametrize("path", ["/chunked", "/sized"])
def test_downloads_stop_at_the_upload_size_cap(server: ThreadedServer, tmp_path: Path, path: str) -> None:
    target = tmp_path / "got"
    assert sources(10 * CHUNK).fetch(f"{server.url}{path}", target) == path.strip("/")
    assert target.read_bytes() == b"x" * 10 * CHUNK
    with pytest.raises(SourceError, match=f"larger than the maximum upload size of {5 * CHUNK} bytes"):
        sources(5 * CHUNK).fetch(f"{server.url}{path}", tmp_path / "capped")
    capped = tmp_path / "capped"
    assert not capped.exists() or capped.stat().st_size <= 5 * CHUNK, "never more than the cap on disk"


def test_redirects_are_not_followed_and_other_hosts_are_checked_again(server: ThreadedServer,
                                                                      tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="answered HTTP 302 Found"):
        sources(CHUNK).fetch(f"{server.url}/moved", tmp_path / "got")
    with pytest.raises(SourceError, match="a loopback address"):  # allowed when created, refused now
        InputSources.from_settings(Settings()).fetch(f"{server.url}/sized", tmp_path / "got")


def test_folder_files_too_big_or_linking_outside_are_refused(tmp_path: Path) -> None:
    root, outside = tmp_path / "drops", tmp_path / "secrets"
    root.mkdir()
    outside.mkdir()
    (outside / "keys.jsonl").write_text("secret\n")
    (root / "a.jsonl").write_bytes(b"x" * 100)
    os.utime(root / "a.jsonl", (time.time() - 60, time.time() - 60))
    (root / "b.jsonl").symlink_to(outside / "keys.jsonl")
    with pytest.raises(SourceError, match="links outside the folders"):
        sources(1000, root).fetch(root.as_uri(), tmp_path / "got")
    (root / "b.jsonl").unlink()
    with pytest.raises(SourceError, match="a.jsonl is larger than the maximum upload size of 99 bytes"):
        sources(99, root).fetch(root.as_uri(), tmp_path / "got")
    assert sources(100, root).fetch(root.as_uri(), tmp_path / "got") == "a.jsonl"
    assert (tmp_path / "got").read_bytes() == b"x" * 100


@pytest.fixture
def db(tmp_path: Path) -> Iterator[tuple[Engine, Settings, FileStore, Path]]:
    root = tmp_path / "drops"
    root.mkdir()
    settings = harness.test_settings(tmp_path, schedule_folders=[root], schedule_url_allow_hosts=["127.0.0.1"])
    engine = make_engine(settings.database_url)
    upgrade(engine)
    yield engine, settings, FileStore(settings.files_dir), root
    engine.dispose()


def add_url_schedules(engine: Engine, settings: Settings, urls: list[str]) -> list[str]:
    with session_scope(engine) as session:
        project = get_or_create_project(session, "p").id
        rows = [create_schedule(session, project, ScheduleCreate(
            cron="0 2 * * *", input_url=url, endpoint="/v1/chat/completions", completion_window="7d"), 60,
            sources=InputSources.from_settings(settings)) for url in urls]
        return [r.id for r in rows]


def test_a_tick_fetches_one_file_and_the_other_due_url_schedules_fire_at_the_next_ticks(
        db: tuple[Engine, Settings, FileStore, Path]) -> None:
    engine, settings, store, root = db
    (root / "in.jsonl").write_bytes(b"".join(orjson.dumps(chat_line(i)) + b"\n" for i in range(2)))
    ids = add_url_schedules(engine, settings, [root.as_uri()] * 3)
    make_due(engine, int(time.time()) - 10)
    fired = [len(fire_due(Core(settings, engine, CATALOGUE, store))) for _ in range(4)]
    assert fired == [1, 1, 1, 0]
    per_schedule = batches_by_schedule(engine)
    assert sorted(len(per_schedule[sid]) for sid in ids) == [1, 1, 1]
    assert len({b.input_file_id for sid in ids for b in per_schedule[sid]}) == 3, "each run stores its own copy"


def test_no_transaction_is_open_while_a_file_downloads(db: tuple[Engine, Settings, FileStore, Path],
                                                       server: ThreadedServer) -> None:
    engine, settings, store, _ = db
    [sid] = add_url_schedules(engine, settings, [f"{server.url}/gated/in.jsonl"])
    make_due(engine, int(time.time()) - 10)
    GATE.clear()
    created: list[str] = []
    tick = threading.Thread(target=lambda: created.extend(fire_due(Core(settings, engine, CATALOGUE, store))))
    tick.start()
    try:
        time.sleep(0.3)  # the tick is now waiting on the download
        wrote = threading.Event()

        def write() -> None:  # SQLite has one writer: this would wait while the tick held a transaction
            with engine.begin() as conn:
                conn.execute(text("UPDATE schedule SET last_error = 'written meanwhile' WHERE id = :id"), {"id": sid})
            wrote.set()

        threading.Thread(target=write, daemon=True).start()
        assert wrote.wait(5), "a database write waited for the download"
        assert tick.is_alive(), "the download was still going"
    finally:
        GATE.set()
        tick.join(10)
    [batch_id] = created
    row = schedule(engine, sid)
    assert (row.last_batch_id, row.last_error) == (batch_id, None)
