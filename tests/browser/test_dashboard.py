"""The dashboard in a real browser: sign in, watch a batch run, cancel it, tenants apart, an admin revoking a key."""

import re
from pathlib import Path

from playwright.sync_api import Page, expect

from tests.harness import EmbeddedBroker, chat_line, submit, upload

LINES = 400  #: at two calls at a time of ~40 ms each: about 8 s of running, ample to watch and cancel


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
