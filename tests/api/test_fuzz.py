"""Schemathesis against the running API (a real uvicorn server on loopback, every operation of its OpenAPI
document, with a valid key): no answer may be a server error (5xx), every status must be one the document states
for that operation, and an operation that declares the bearer scheme must refuse a request without a valid key.

Bounded: EXAMPLES positive and EXAMPLES negative cases per operation, about a minute and a half on a small machine. The
figures are printed (``fuzzing: N cases over M operations, server errors: 0``) and asserted.
"""

from collections import Counter
from collections.abc import Iterator

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import ignored_auth, status_code_conformance

from tests.api.conftest import open_tenant
from tests.harness import EmbeddedBroker

BROKER_OPTIONS = {"workers": False, "planner": False}
EXAMPLES = 50  #: cases generated per operation and generation mode
CHECKS = [not_a_server_error, status_code_conformance, ignored_auth]


@pytest.fixture
def auth(shared_broker: EmbeddedBroker) -> Iterator[dict[str, str]]:
    with open_tenant(shared_broker, "fuzzing") as tenant:
        yield {"Authorization": f"Bearer {tenant.key}"}


def _fuzz(operation: schemathesis.APIOperation, mode: GenerationMode, auth: dict[str, str],
          http: requests.Session, statuses: Counter[int]) -> None:
    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
              suppress_health_check=list(HealthCheck))
    def run(case: schemathesis.Case) -> None:
        response = case.call(headers=auth, session=http)
        statuses[response.status_code] += 1
        case.validate_response(response, checks=CHECKS, headers=auth)

    run()


def test_fuzzing_finds_no_server_error_and_no_undocumented_status(
        shared_broker: EmbeddedBroker, auth: dict[str, str], capsys: pytest.CaptureFixture[str]) -> None:
    schema = schemathesis.openapi.from_url(shared_broker.server.url + "/openapi.json")
    statuses: Counter[int] = Counter()
    failures: list[str] = []
    operations = [result.ok() for result in schema.get_all_operations()]
    with requests.Session() as http:
        for operation in operations:
            for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
                try:
                    _fuzz(operation, mode, auth, http, statuses)
                except Unsatisfiable:  # an operation without parameters has no invalid input to send
                    continue
                except Exception as exc:  # noqa: BLE001 -- every operation is fuzzed; failures are listed below
                    failures.append(f"{operation.label} ({mode}): {exc}")
    server_errors = sum(n for status, n in statuses.items() if status >= 500)
    with capsys.disabled():
        print(f"\nfuzzing: {statuses.total()} cases over {len(operations)} operations, server errors: "
              f"{server_errors}, statuses: {dict(sorted(statuses.items()))}")
    assert not failures, "\n\n".join(failures)
    assert server_errors == 0
    assert len(operations) >= 25 and statuses.total() >= 25 * len(operations)
