"""The dashboard in a real browser: sign in, watch a batch run, cancel it, tenants apart, an admin revoking a key,
paging through schedules and webhook deliveries."""

import re
import time
from pathlib import Path

from playwright.sync_api import Locator, Page, expect
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from simulator.serving import ThreadedServer
from tests.harness import EmbeddedBroker, chat_line, submit, upload, wait_for

LINES = 400  #: at two calls at a time of ~40 ms each: about 8 s of running, ample to watch and cancel
PAGE = 20  #: rows the dashboard's lists show at a time


def sign_in(page: Page, broker: EmbeddedBroker, key: str) -> None:
    page.goto(broker.server.url + "/dashboard")
    page.get_by_label("API key").fill(key)
    page.get_by_role("button", name="Sign in").click()
    expect(page.locator("#nav")).to_be_visible()


def shoot(page: Page, folder: Path, name: str) -> None:
    """Save the page's picture, once it shows no value the page failed to fill in."""
    page.wait_for_load_state("networkidle")
    shown = page.locator("#page").inner_text()
    assert not re.search(r"\b(null|undefined|NaN)\b|\[object ", shown), shown
    page.screenshot(path=str(folder / f"{name}.png"), full_page=True)


def done_of(page: Page, batch_id: str) -> int:
    bar = page.locator(f"tr:has(a:text-is('{batch_id}')) [role=progressbar]")
    return int(bar.get_attribute("aria-valuenow") or 0)


def test_watch_a_batch_advance_then_cancel_it_and_see_its_cost(page: Page, dash_broker: EmbeddedBroker,
                                                                 screenshots: Path) -> None:
    client = dash_broker.client()
    batch = submit(client, [chat_line(i) for i in range(LINES)])
    sign_in(page, dash_broker, dash_broker.key)
    expect(page.get_by_role("heading", name="Overview")).to_be_visible()
    page.goto(dash_broker.server.url + "/dashboard#/batches")
    row = page.locator(f"tr:has(a:text-is('{batch.id}'))")
    expect(row).to_be_visible()
    page.wait_for_function(  # the bar moves on without a reload: the page polls the API
        "([id, n]) => Number(document.querySelector(`a[href^='#/batch/${id}']`)?.closest('tr')"
        "?.querySelector('[role=progressbar]')?.getAttribute('aria-valuenow')) > n",
        arg=[batch.id, 0], timeout=15_000)
    first = done_of(page, batch.id)
    page.wait_for_function(
        "([id, n]) => Number(document.querySelector(`a[href^='#/batch/${id}']`)?.closest('tr')"
        "?.querySelector('[role=progressbar]')?.getAttribute('aria-valuenow')) > n",
        arg=[batch.id, first], timeout=15_000)
    assert first < done_of(page, batch.id) < LINES
    shoot(page, screenshots, "batches")

    row.get_by_role("link", name=batch.id).click()
    expect(page.get_by_role("heading", name=re.compile(batch.id))).to_be_visible()
    expect(page.get_by_text("Routes taken")).to_be_visible()
    shoot(page, screenshots, "batch")
    page.get_by_role("button", name="Cancel batch").click()
    expect(page.locator("h1 .pill").first).to_have_text("cancelled", timeout=15_000)

    ended = client.batches.retrieve(batch.id)
    assert ended.status == "cancelled"
    cost = float(getattr(ended, "cost_usd"))  # noqa: B009 (an extension field)
    assert cost > 0 and 0 < ended.request_counts.completed < LINES
    shown = float(page.locator("#cost").inner_text().lstrip("$").replace(",", ""))
    assert abs(shown - cost) < 1e-6  # the page shows the API's own figure
    expect(page.get_by_role("button", name="Download output")).to_be_visible()

    page.goto(dash_broker.server.url + "/dashboard#/overview")
    expect(page.get_by_text("Calls in flight per provider")).to_be_visible()
    shoot(page, screenshots, "overview")
    page.goto(dash_broker.server.url + "/dashboard#/providers")
    expect(page.get_by_text("Latency, last hour")).to_be_visible()
    shoot(page, screenshots, "providers")
    page.goto(dash_broker.server.url + "/dashboard#/usage")
    expect(page.get_by_text("Spend per API key")).to_be_visible()
    expect(page.locator("figure svg rect").first).to_be_attached()  # today's cost is a bar
    shoot(page, screenshots, "usage")


def test_a_project_key_sees_only_its_project(page: Page, dash_broker: EmbeddedBroker) -> None:
    theirs = submit(dash_broker.client(dash_broker.new_key("other-team")), [chat_line(0)])
    ours = submit(dash_broker.client(), [chat_line(0)])
    sign_in(page, dash_broker, dash_broker.key)
    page.goto(dash_broker.server.url + "/dashboard#/batches")
    expect(page.get_by_role("link", name=ours.id)).to_be_visible()
    expect(page.get_by_role("link", name=theirs.id)).to_have_count(0)
    expect(page.locator("#project")).to_be_disabled()
    expect(page.get_by_role("link", name="Admin")).to_be_hidden()
    page.goto(dash_broker.server.url + f"/dashboard#/batch/{theirs.id}?project={theirs.project_id}")
    expect(page.get_by_role("alert")).to_contain_text("No such Batch")


def test_an_admin_revokes_a_key_and_the_next_call_with_it_fails(page: Page, dash_broker: EmbeddedBroker,
                                                                 screenshots: Path) -> None:
    victim = dash_broker.new_key("contractors")
    with dash_broker.admin_http() as admin:
        projects = {p["name"]: p["id"] for p in admin.get("/organization/projects").json()["data"]}
    assert dash_broker.http(victim).get("/models").status_code == 200
    sign_in(page, dash_broker, dash_broker.admin_key)
    expect(page.locator("#role")).to_have_text("admin key")
    page.goto(dash_broker.server.url + "/dashboard#/admin")
    expect(page.locator("section.card:has(h2:text-is('Admin keys')) tbody tr")).not_to_have_count(0)
    page.goto(dash_broker.server.url + f"/dashboard#/admin/{projects['contractors']}")
    keys = page.locator("section.card:has(h2:text-is('API keys')) tbody tr")
    expect(keys).to_have_count(1)
    expect(keys.first).to_contain_text(victim[-4:])
    shoot(page, screenshots, "admin")
    keys.first.get_by_role("button", name="Revoke").click()
    expect(page.get_by_text("No key in this project.")).to_be_visible()
    answer = dash_broker.http(victim).get("/models")
    assert answer.status_code == 401, answer.text

    file_id = upload(dash_broker.client(), [chat_line(0)])
    with dash_broker.http() as http:
        nightly = http.post("/schedules", json={"cron": "0 2 * * *", "input_file_id": file_id,
                                                "endpoint": "/v1/chat/completions"}).json()
    page.get_by_label("Project").select_option(projects["default"])
    page.goto(dash_broker.server.url + "/dashboard#/schedules")
    schedule = page.locator(f"tr:has(code:text-is('{nightly['id']}'))")
    expect(schedule).to_contain_text("0 2 * * *")
    shoot(page, screenshots, "schedules")
    schedule.get_by_role("button", name="Pause").click()
    expect(schedule.get_by_role("button", name="Resume")).to_be_visible()
    with dash_broker.http() as http:
        assert http.get(f"/schedules/{nightly['id']}").json()["enabled"] is False
    page.goto(dash_broker.server.url + "/dashboard#/webhooks")
    expect(page.get_by_text("Recent deliveries")).to_be_visible()
    shoot(page, screenshots, "webhooks")


def test_signing_in_with_a_wrong_key_says_so(page: Page, dash_broker: EmbeddedBroker) -> None:
    page.goto(dash_broker.server.url + "/")  # the landing sends a browser to the dashboard
    expect(page).to_have_url(re.compile("/dashboard"))
    page.get_by_label("API key").fill("sk-not-a-key")
    page.get_by_role("button", name="Sign in").click()
    expect(page.locator("#signin-error")).to_have_text("That key was not accepted.")
    expect(page.locator("#nav")).to_be_hidden()


async def _accept(request: Request) -> Response:
    return Response(status_code=204)


def _shown(rows: Locator, columns: int) -> set[str]:
    """Each row's first ``columns`` cells, tab-separated."""
    return set(rows.evaluate_all("(rows, n) => rows.map((r) => [...r.cells].slice(0, n).map((c) => c.innerText)"
                                 ".join('\\t'))", columns))


def _page_through(page: Page, rows: Locator, columns: int, expected: set[str]) -> None:
    """The list shows ``expected`` (more than a page; a row told by its first ``columns`` cells) in two pages, none
    twice; First page comes back to the first."""
    expect(rows).to_have_count(PAGE)
    first = _shown(rows, columns)
    expect(page.get_by_role("link", name="First page")).to_have_count(0)
    page.get_by_role("link", name="Next page").click()
    expect(rows).to_have_count(len(expected) - PAGE)
    second = _shown(rows, columns)
    assert first | second == expected and not first & second
    expect(page.get_by_role("link", name="Next page")).to_have_count(0)
    page.get_by_role("link", name="First page").click()
    expect(rows).to_have_count(PAGE)
    assert _shown(rows, columns) == first


def test_schedules_and_webhook_deliveries_page_through_more_than_a_page(page: Page,
                                                                        dash_broker: EmbeddedBroker) -> None:
    key = dash_broker.new_key("paging")
    client = dash_broker.client(key)
    file_id = upload(client, [chat_line(0)])
    with ThreadedServer(Starlette(routes=[Route("/hook/{n}", _accept, methods=["POST"])]), name="hooks") as hooks, \
            dash_broker.http(key) as http:
        schedules = set()
        for _ in range(PAGE + 5):
            made = http.post("/schedules", json={"cron": "0 3 * * *", "input_file_id": file_id,
                                                 "endpoint": "/v1/chat/completions"}).json()
            schedules.add(made["id"])
            assert http.post(f"/schedules/{made['id']}", json={"enabled": False}).status_code == 200  # never runs
        for n in range(3):
            assert http.post("/webhooks", json={"url": f"{hooks.url}/hook/{n}"}).status_code == 200
        for _ in range(8):  # each batch's end is one delivery to each of the three endpoints
            wait_for(client, submit(client, [chat_line(0)]).id)
        deadline = time.monotonic() + 15
        while len(deliveries := http.get("/webhooks/deliveries", params={"limit": 100}).json()["data"]) < 24:
            assert time.monotonic() < deadline, deliveries
            time.sleep(0.05)
        events = {f"{d['event_type']} ({d['event_id']})\t{d['url']}" for d in deliveries}
        assert len(events) == 24

        sign_in(page, dash_broker, key)
        page.goto(dash_broker.server.url + "/dashboard#/schedules")
        _page_through(page, page.locator("section.card tbody tr"), 1, schedules)
        page.goto(dash_broker.server.url + "/dashboard#/webhooks")
        expect(page.locator("section.card:has(h2:text-is('Endpoints')) tbody tr")).to_have_count(3)
        rows = page.locator("section.card:has(h2:text-is('Recent deliveries')) tbody tr")
        _page_through(page, rows, 2, events)
