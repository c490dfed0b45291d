"""The reads the dashboard is built on: GET /v1/overview, batch list filters, admin reads across projects
(``project_id``), per-minute provider history, circuit state and native batches on GET /v1/providers."""

import httpx

from tests.api.conftest import Tenant
from tests.api.helpers import assert_error
from tests.harness import CHAT_MODEL, EmbeddedBroker, chat_line, publish_provider_state, submit, wait_for


def project_of(tenant: Tenant) -> str:
    overview = tenant.http.get("/overview").json()
    assert isinstance(overview["project_id"], str)
    return overview["project_id"]


def test_overview_counts_the_projects_lines_spend_and_failures(tenant: Tenant, other_tenant: Tenant) -> None:
    empty = tenant.http.get("/overview").json()
    assert empty["lines_per_second"] == 0 and empty["cost_today_usd"] == 0 and empty["failures_last_hour"] == []
    batch = wait_for(tenant.client, submit(tenant.client, [chat_line(i) for i in range(5)]).id)
    later = submit(tenant.client, [chat_line(i) for i in range(3)], not_before=2_000_000_000)
    wait_for(tenant.client, later.id, statuses=("in_progress",))
    tenant.client.batches.cancel(later.id)
    wait_for(tenant.client, later.id)
    overview = tenant.http.get("/overview").json()
    assert overview["project_id"] == project_of(tenant)
    assert overview["lines_per_second"] == round((5 + 3) / 60, 3)
    cost = tenant.http.get("/usage").json()
    assert overview["cost_today_usd"] == overview["month_to_date_cost_usd"] == cost["month_to_date_cost_usd"] > 0
    assert overview["failures_last_hour"] == [{"code": "batch_cancelled", "count": 3}]
    assert batch.request_counts.failed == 0
    assert other_tenant.http.get("/overview").json()["lines_per_second"] == 0  # tenants apart


def test_batch_list_filters_by_status_model_and_route(tenant: Tenant) -> None:
    done = wait_for(tenant.client, submit(tenant.client, [chat_line(0)]).id)
    running = submit(tenant.client, [chat_line(0)], not_before=2_000_000_000)
    running = wait_for(tenant.client, running.id, statuses=("in_progress",))

    def ids(**params: str) -> set[str]:
        answer = tenant.http.get("/batches", params=params)
        assert answer.status_code == 200, answer.text
        return {b["id"] for b in answer.json()["data"]}

    assert ids(status="completed") == {done.id}
    assert running.id in ids(status=running.status) and done.id not in ids(status=running.status)
    assert ids(model=CHAT_MODEL) >= {done.id}
    assert ids(model="no-such-model") == set()
    assert ids(route="auto") == {done.id, running.id} and ids(route="realtime") == set()
    assert_error(tenant.http.get("/batches", params={"status": "sleeping"}), 400)


def test_admins_read_across_projects_and_project_keys_only_their_own(shared_broker: EmbeddedBroker, tenant: Tenant,
                                                                       other_tenant: Tenant) -> None:
    ours = submit(tenant.client, [chat_line(0)])
    theirs = submit(other_tenant.client, [chat_line(0)])
    with shared_broker.admin_http() as admin:
        every = {b["id"]: b["project_id"] for b in admin.get("/batches", params={"project_id": "all",
                                                                                "limit": 100}).json()["data"]}
        assert every[ours.id] == project_of(tenant) and every[theirs.id] == project_of(other_tenant)
        one = admin.get("/batches", params={"project_id": project_of(tenant), "limit": 100}).json()["data"]
        assert {b["id"] for b in one} >= {ours.id} and theirs.id not in {b["id"] for b in one}
        assert admin.get("/overview", params={"project_id": "all"}).json()["project_id"] is None
        assert admin.get("/usage", params={"project_id": "all"}).status_code == 200
        assert_error(admin.get("/overview", params={"project_id": "proj_nope"}), 404, param="project_id")
    assert tenant.http.get("/batches", params={"project_id": project_of(tenant)}).status_code == 200
    for path in ("/batches", "/overview", "/usage"):
        for other in (project_of(other_tenant), "all"):
            assert_error(tenant.http.get(path, params={"project_id": other}), 404, param="project_id")


def test_provider_history_keeps_each_minute_of_the_reports(shared_broker: EmbeddedBroker, tenant: Tenant) -> None:
    wait_for(tenant.client, submit(tenant.client, [chat_line(i) for i in range(3)]).id)
    publish_provider_state(shared_broker)
    history = tenant.http.get("/providers/sim/history").json()
    assert history["provider"] == "sim" and history["data"]
    latest = history["data"][-1]
    assert latest["calls"] >= 3 and latest["p50_ms"] is not None and latest["rate_limited"] == 0
    minutes = [m["minute"] for m in history["data"]]
    assert minutes == sorted(set(minutes)) and all(m % 60 == 0 for m in minutes)
    provider = tenant.http.get("/providers").json()["data"][0]
    assert provider["circuit_open"] is False and provider["native_batches_in_flight"] == 0
    assert_error(tenant.http.get("/providers/nope/history"), 404, param="provider_id")
    assert_error(tenant.http.get("/providers/sim/history", params={"minutes": 0}), 400)
    assert httpx.get(shared_broker.base_url + "/overview", trust_env=False).status_code == 401


def test_usage_totals_per_day_by_a_column_match_the_detailed_rows(shared_broker: EmbeddedBroker, tenant: Tenant,
                                                                  other_tenant: Tenant) -> None:
    for t in (tenant, other_tenant):
        wait_for(t.client, submit(t.client, [chat_line(i) for i in range(4)]).id)
    detail = tenant.http.get("/usage").json()
    for by in ("model", "provider", "route", "project_id"):
        totals = tenant.http.get("/usage", params={"group_by": by}).json()
        assert totals["total_cost_usd"] == detail["total_cost_usd"] > 0
        assert totals["total_requests"] == detail["total_requests"] == 4
        assert len({(row["day"], row[by]) for row in totals["data"]}) == len(totals["data"])
    with shared_broker.admin_http() as admin:
        every = admin.get("/usage", params={"project_id": "all", "group_by": "project_id"}).json()
    projects = {row["project_id"] for row in every["data"]}
    assert {project_of(tenant), project_of(other_tenant)} <= projects
    assert every["month_to_date_cost_usd"] >= 2 * detail["month_to_date_cost_usd"]
    assert_error(tenant.http.get("/usage", params={"group_by": "colour"}), 400)
