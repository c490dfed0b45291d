"""``GET /v1/batches/{id}/failures`` (extension): failed lines grouped by error code, ours or the upstream's."""

from simulator.responses import SIM_ERROR_400_MARKER
from tests.api.conftest import Tenant, open_tenant
from tests.harness import chat_line, submit, wait_for


def test_failed_lines_are_grouped_by_code_with_the_first_message_and_scoped_to_the_project(tenant: Tenant) -> None:
    lines = [chat_line(i, f"bad {SIM_ERROR_400_MARKER}" if i in (3, 5) else None) for i in range(8)]
    upstream = wait_for(tenant.client, submit(tenant.client, lines).id)
    groups = tenant.client.get(f"/batches/{upstream.id}/failures", cast_to=object)
    assert groups == {"object": "list", "data": [{
        "code": "simulated_error", "status_code": 400, "count": 2, "custom_id": "req-3",
        "message": f"Simulated invalid request ({SIM_ERROR_400_MARKER} found in the request)."}]}

    clean = wait_for(tenant.client, submit(tenant.client, [chat_line(0)]).id)
    assert tenant.client.get(f"/batches/{clean.id}/failures", cast_to=object) == {"object": "list", "data": []}
    with open_tenant(tenant.broker) as other:
        foreign = other.http.get(f"/batches/{upstream.id}/failures")
    assert foreign.status_code == 404 and foreign.json()["error"]["message"] == f"No such Batch object: {upstream.id}"
