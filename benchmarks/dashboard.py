"""Dashboard pages at scale: every API request each page makes, timed against 10,000 batches and 1M lines.

Seeds a fresh database in bulk (SQLite in a temporary folder, and PostgreSQL too with ``--postgres``): projects and
keys, batches in every status over 30 days (a few running, some at risk), their lines (ended ones with a finish
time, failures with error codes), the daily usage roll-ups per project/provider/model/route and per key, an hour of
per-minute provider history, schedules and webhook deliveries. Then serves the API on loopback (no workers, no
planner: the numbers stay still) and requests, for each page, what the dashboard's JavaScript requests, ``--rounds``
times, admin key on every project unless the page says "project key".

Figure: each page's requests answered in < 300 ms (p95 of the page's requests made one after another).
Reference, in the same run on the same data: the same requests after dropping the indexes migration 0015_dashboard
adds (what the pages would cost without them).

Run: ``python -m benchmarks.dashboard [--batches 10000] [--lines 1000000] [--rounds 20]
[--postgres postgresql://postgres@127.0.0.1:5432/test] [--screenshots docs/screenshots]``. Seeding 1M lines takes
one to four minutes per database. ``--screenshots`` pictures every page on the seeded SQLite data (the README's).
"""

import argparse
import contextlib
import random
import statistics
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import Engine, insert, text
from sqlmodel import select

from benchmarks._common import postgres_database, print_table
from broker.auth import ADMIN, create_key, issue_key
from broker.catalogue import Catalogue, ModelSpec, ProviderConfig
from broker.core import Core
from broker.db import session_scope
from broker.settings import Settings
from broker.tables import (
    ApiKey,
    BatchRow,
    Line,
    Project,
    ProviderMinuteRow,
    ProviderStateRow,
    ScheduleRow,
    UsageDaily,
    UsageKeyDaily,
    WebhookDelivery,
)
from cli.compose import Processes
from simulator.serving import ThreadedServer

PROJECTS = 20
MODELS = ("gpt-4o-mini", "gpt-4o", "text-embedding-3-small")
PROVIDERS = ("openai-eu", "openai-us")
ROUTES = ("realtime", "native_batch")
ERRORS = ("rate_limited", "http_500", "batch_expired", "invalid_request", "batch_cancelled")
#: the indexes migration 0015_dashboard adds (dropped for the reference side)
DASHBOARD_INDEXES = ("ix_batch_project_id_status_id", "ix_line_status_finished_at", "ix_usage_daily_day")
CHUNK = 50_000  #: rows per bulk insert


def catalogue() -> Catalogue:
    models = {m: ModelSpec(input=0.15, output=0.6) for m in MODELS}
    return Catalogue(providers={p: ProviderConfig(base_url="http://127.0.0.1:9/v1", models=models, regions=[p[-2:]])
                                for p in PROVIDERS})


def bulk(engine: Engine, table: Any, rows: list[dict[str, Any]]) -> None:
    for start in range(0, len(rows), CHUNK):
        with engine.begin() as conn:
            conn.execute(insert(table), rows[start:start + CHUNK])


def _batches(rnd: random.Random, now: int, batches: int, lines: int, projects: list[str],
             key_ids: list[str]) -> list[dict[str, Any]]:
    """Batches over the last 30 days, oldest first; the newest 60 still run (a third of them late), and the last
    one is 50 times larger than the rest (the detail page's worst case)."""
    template = BatchRow(id="", project_id="", endpoint="/v1/chat/completions", input_file_id="file_bench",
                        completion_window="24h", status="completed", created_at=0).model_dump()
    rows = []
    for i in range(batches):
        created = now - int((batches - i) / batches * 30 * 86400)
        running = i >= batches - 60
        status = "in_progress" if running else rnd.choices(
            ["completed", "failed", "expired", "cancelled"], weights=[90, 3, 3, 4])[0]
        total = lines // batches * (50 if i == batches - 1 else 1)
        done = rnd.randrange(total) if running else total
        failed = done // 20
        rows.append({**template, "id": f"batch_{created:010x}{i:06d}", "project_id": projects[i % len(projects)],
                     "model": rnd.choice(MODELS), "provider": rnd.choice(PROVIDERS), "status": status,
                     "created_at": created, "in_progress_at": created + 5,
                     "expires_at": created + (600 if running and i % 3 == 0 else 86400),
                     "completed_at": None if running else created + 3600, "total": total,
                     "completed": done - failed, "failed": failed, "cost_usd": done * 0.0002,
                     "route": rnd.choice(("auto", "realtime", "native_batch")), "api_key_id": rnd.choice(key_ids),
                     "input_tokens": done * 20, "output_tokens": done * 30})
    return rows


def seed(engine: Engine, batches: int, lines: int) -> dict[str, Any]:
    rnd, now = random.Random(7), int(time.time())
    with session_scope(engine) as session:
        admin_key = issue_key(session, ADMIN, name="bench")[1]
    projects = [{"id": f"proj_bench{i:03d}", "name": f"team-{i}", "created_at": now - 40 * 86400,
                 "monthly_budget_usd": 500.0, "status": "active"} for i in range(PROJECTS)]
    bulk(engine, Project.__table__, projects)
    with session_scope(engine) as session:
        project_key = create_key(session, projects[0]["id"])
        key_ids = list(session.exec(select(ApiKey.id)))
        session.commit()
    batch_rows = _batches(rnd, now, batches, lines, [p["id"] for p in projects], key_ids)
    bulk(engine, BatchRow.__table__, batch_rows)
    line_template = Line(batch_id="", idx=0, custom_id="", body="{}", provider="").model_dump(exclude={"id"})
    line_rows: list[dict[str, Any]] = []
    for batch in batch_rows:
        running, done, failed = batch["status"] == "in_progress", batch["completed"] + batch["failed"], batch["failed"]
        finished_base = now - 1800 if running else batch["created_at"] + 60
        for n in range(batch["total"]):
            ended, bad = n < done, n < failed
            line_rows.append({**line_template, "batch_id": batch["id"], "idx": n, "custom_id": f"r{n}",
                              "provider": batch["provider"],
                              "status": ("failed" if bad else "succeeded") if ended else "pending",
                              "attempts": 1 if ended else 0, "error_code": rnd.choice(ERRORS) if bad else None,
                              "error_message": "upstream said no" if bad else None,
                              "finished_at": finished_base + n * 1800 / batch["total"] if ended else None,
                              "cost_usd": 0.0002 if ended else 0.0, "input_tokens": 20 if ended else 0,
                              "output_tokens": 30 if ended else 0})
        if len(line_rows) >= CHUNK:
            bulk(engine, Line.__table__, line_rows)
            line_rows = []
    bulk(engine, Line.__table__, line_rows)
    days = [time.strftime("%Y-%m-%d", time.gmtime(now - d * 86400)) for d in range(30)]
    bulk(engine, UsageDaily.__table__, [
        {"project_id": p["id"], "day": d, "provider": pr, "model": m, "route": r, "requests": 100,
         "input_tokens": 2000, "output_tokens": 3000, "cost_usd": rnd.random()}
        for p in projects for d in days for pr in PROVIDERS for m in MODELS for r in ROUTES])
    bulk(engine, UsageKeyDaily.__table__, [
        {"api_key_id": k, "day": d, "model": m, "project_id": projects[0]["id"], "requests": 100,
         "input_tokens": 2000, "output_tokens": 3000, "cost_usd": rnd.random()} for k in key_ids for d in days
        for m in MODELS])
    minutes = [(now // 60 - m) * 60 for m in range(60)]
    bulk(engine, ProviderMinuteRow.__table__, [
        {"provider": p, "minute": m, "worker_id": f"w{w}", "in_flight": rnd.randrange(20, 64),
         "calls": rnd.randrange(400, 800), "rate_limited": rnd.choice((0, 0, 0, 2, 9)),
         "p50_ms": 350 + 100 * rnd.random(), "p95_ms": 800 + 300 * rnd.random()}
        for p in PROVIDERS for m in minutes for w in range(2)])
    bulk(engine, ProviderStateRow.__table__, [
        {"provider": p, "worker_id": f"w{w}", "updated_at": now + 3600, "in_flight": 40, "calls": 600,
         "rate_limited": 3, "p50_ms": 400.0, "p95_ms": 900.0, "circuit_open": False} for p in PROVIDERS
        for w in range(2)])
    bulk(engine, ScheduleRow.__table__, [
        ScheduleRow(id=f"sched_bench{i:04d}", project_id=projects[i % PROJECTS]["id"], cron="0 * * * *",
                    timezone="UTC", endpoint="/v1/chat/completions", completion_window="24h", created_at=now,
                    next_run_at=now + 3600, input_file_id="file_bench").model_dump() for i in range(200)])
    bulk(engine, WebhookDelivery.__table__, [
        WebhookDelivery(id=f"whd_bench{i:06d}", project_id=projects[i % PROJECTS]["id"], url="https://example.com/h",
                        event_id=f"evt_{i}", event_type="batch.completed", payload="{}", status="delivered",
                        next_attempt_at=0, created_at=now - i).model_dump() for i in range(20_000)])
    largest, middle = batch_rows[-1], batch_rows[len(batch_rows) // 2]
    return {"admin": admin_key, "project": project_key, "project_id": projects[0]["id"], "large": largest["id"],
            "large_project": largest["project_id"], "middle": middle["id"]}


def pages(seeded: dict[str, Any]) -> dict[str, list[tuple[str, dict[str, Any], str]]]:
    """Each page's requests as the dashboard makes them: (path, query, key), key "admin[:project]" or "project"."""
    every, p, large = {"project_id": "all"}, seeded["project_id"], seeded["large"]
    owner = f"admin:{seeded['large_project']}"  # an admin opening a batch sends its project (OpenAI-Project)
    today = time.strftime("%Y-%m-%d", time.gmtime())
    month_ago = time.strftime("%Y-%m-%d", time.gmtime(time.time() - 29 * 86400))
    org = f"/v1/organization/projects/{p}"
    return {
        "Overview (all projects)": [("/v1/overview", every, "admin"), ("/v1/providers", {}, "admin")],
        "Overview (project key)": [("/v1/overview", {}, "project"), ("/v1/providers", {}, "project")],
        "Batches (all projects)": [("/v1/batches", {**every, "limit": 20}, "admin")],
        "Batches, status=in_progress": [("/v1/batches", {**every, "status": "in_progress", "limit": 20}, "admin")],
        "Batches, project + status": [("/v1/batches", {"status": "completed", "limit": 20}, "project")],
        "Batches, model + route": [("/v1/batches", {**every, "model": "gpt-4o", "route": "native_batch",
                                                    "limit": 20}, "admin")],
        "Batches, page deep in the list": [("/v1/batches", {**every, "after": seeded["middle"], "limit": 20},
                                            "admin")],
        "Batch detail (largest batch)": [(f"/v1/batches/{large}", {}, owner),
                                         (f"/v1/batches/{large}/failures", {}, owner)],
        "Providers": [("/v1/providers", {}, "admin")] + [(f"/v1/providers/{pr}/history", {}, "admin")
                                                         for pr in PROVIDERS],
        "Usage and cost (30 days)": [("/v1/usage", {**every, "start_date": month_ago, "end_date": today,
                                                    "group_by": by}, "admin") for by in ("model", "api_key_id")],
        "Schedules": [("/v1/schedules", {"limit": 20}, "project")],
        "Webhooks": [("/v1/webhooks", {"limit": 20}, "project"), ("/v1/webhooks/deliveries", {"limit": 20},
                                                                   "project")],
        "Admin (a project)": [("/v1/organization/projects", {"limit": 100, "include_archived": "true"}, "admin"),
                              (org, {}, "admin"), (f"{org}/api_keys", {"limit": 100}, "admin"),
                              (f"{org}/rate_limits", {}, "admin")],
    }


def time_pages(base_url: str, seeded: dict[str, Any], rounds: int) -> dict[str, tuple[float, float]]:
    """p50 and p95 (ms) per page of its requests made one after another."""
    keys = {"admin": seeded["admin"], "project": seeded["project"]}
    results: dict[str, tuple[float, float]] = {}
    with httpx.Client(base_url=base_url, timeout=60, trust_env=False) as http:
        for page, requests in pages(seeded).items():
            samples = []
            for _ in range(rounds + 1):  # the first round warms caches and is not counted
                start = time.perf_counter()
                for path, params, who in requests:
                    key, _, project = who.partition(":")
                    headers = {"Authorization": f"Bearer {keys[key]}"}
                    if project:
                        headers["OpenAI-Project"] = project
                    answer = http.get(path, params=params, headers=headers)
                    assert answer.status_code == 200, (path, answer.text)
                samples.append((time.perf_counter() - start) * 1000)
            samples = samples[1:]
            results[page] = (statistics.median(samples), statistics.quantiles(samples, n=20)[18])
    return results


@contextlib.contextmanager
def serving(database_url: str, folder: Path) -> Iterator[tuple[Core, str]]:
    core = Core.open(Settings(data_dir=folder, database_url=database_url), catalogue())
    server = ThreadedServer(Processes(core).app(), name="bench-api").start()
    try:
        yield core, server.url
    finally:
        server.stop()
        core.engine.dispose()


def screenshots(base_url: str, seeded: dict[str, Any], folder: Path) -> None:
    """A picture of every page on the seeded data, as an admin (Debian's chromium, driven by Playwright)."""
    import shutil

    from playwright.sync_api import sync_playwright

    folder.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=shutil.which("chromium"))
        page = browser.new_page(viewport={"width": 1360, "height": 900})
        page.goto(base_url + "/dashboard")
        page.get_by_label("API key").fill(seeded["admin"])
        page.get_by_role("button", name="Sign in").click()
        shots = [("overview", "#/overview"), ("batches", "#/batches"), ("providers", "#/providers"),
                 ("usage", "#/usage?by=project_id"), ("batch", f"#/batch/{seeded['large']}?project="
                                                             f"{seeded['large_project']}"),
                 ("admin", f"#/admin/{seeded['project_id']}"), ("schedules", "#/schedules"), ("webhooks", "#/webhooks")]
        for name, route in shots:
            if name == "schedules":
                page.get_by_label("Project").select_option(seeded["project_id"])
            page.goto(f"{base_url}/dashboard{route}")
            page.locator(f"[data-page={route[2:].split('/')[0].split('?')[0]}] h1").wait_for()
            page.wait_for_load_state("networkidle")
            page.screenshot(path=str(folder / f"{name}.png"), full_page=name not in ("batches", "webhooks"))
        browser.close()
    print(f"screenshots in {folder}")


def run(database_url: str, label: str, args: argparse.Namespace) -> list[list[object]]:
    with tempfile.TemporaryDirectory() as folder, serving(database_url, Path(folder)) as (core, url):
        started = time.perf_counter()
        seeded = seed(core.engine, args.batches, args.lines)
        with core.engine.begin() as conn:
            conn.execute(text("ANALYZE"))
        print(f"{label}: seeded {args.batches:,} batches and {args.lines:,}+ lines in "
              f"{time.perf_counter() - started:.0f} s")
        if args.screenshots and label == "SQLite":
            screenshots(url, seeded, args.screenshots)
        after = time_pages(url, seeded, args.rounds)
        with core.engine.begin() as conn:
            for index in DASHBOARD_INDEXES:
                conn.execute(text(f"DROP INDEX {index}"))
            conn.execute(text("ANALYZE"))
        before = time_pages(url, seeded, args.rounds)
    return [[label, page, f"{after[page][0]:.1f}", f"{after[page][1]:.1f}", f"{before[page][0]:.1f}",
             f"{before[page][1]:.1f}", f"{before[page][1] / after[page][1]:.1f}x",
             "yes" if after[page][1] < 300 else "NO"] for page in after]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--batches", type=int, default=10_000)
    parser.add_argument("--lines", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=20, help="timed rounds per page (at least 2)")
    parser.add_argument("--postgres", help="also run on a fresh database of this PostgreSQL server")
    parser.add_argument("--screenshots", type=Path, help="save a picture of every page on the seeded data here")
    args = parser.parse_args()
    args.rounds = max(2, args.rounds)
    with tempfile.TemporaryDirectory() as folder:
        rows = run(f"sqlite:///{folder}/bench.db", "SQLite", args)
    if args.postgres:
        with postgres_database(args.postgres) as url:
            rows += run(url.replace("postgresql://", "postgresql+psycopg://", 1), "PostgreSQL", args)
    print_table(f"Dashboard pages, {args.batches:,} batches, {args.lines:,} lines (ms; page = its requests in turn)",
                ["database", "page", "p50", "p95", "p50 without 0015 indexes", "p95 without", "ratio p95",
                 "< 300 ms"], rows)


if __name__ == "__main__":
    main()
