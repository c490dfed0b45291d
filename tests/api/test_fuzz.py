"""Schemathesis against the running API (a real uvicorn server on loopback, every operation of its OpenAPI
document, with a valid key; tests/fuzzing.py): no answer may be a server error (5xx), every status must be one the
document states for that operation, and an operation that declares the bearer scheme must refuse a request
without a valid key. Bounded: EXAMPLES positive and EXAMPLES negative cases per operation, about a minute and a
half on a small machine. The figures are printed (``fuzzing: N cases over M operations, server errors: 0``)."""

import pytest

from tests.api.conftest import open_tenant
from tests.fuzzing import fuzz
from tests.harness import EmbeddedBroker

BROKER_OPTIONS = {"workers": False, "planner": False}
EXAMPLES = 50  #: cases generated per operation and generation mode


def test_fuzzing_finds_no_server_error_and_no_undocumented_status(shared_broker: EmbeddedBroker,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    with open_tenant(shared_broker, "fuzzing") as tenant:
        report = fuzz(shared_broker.server.url, tenant.key, EXAMPLES)
    with capsys.disabled():
        print("\n" + report.summary())
    assert not report.failures, "\n\n".join(report.failures)
    assert report.server_errors == 0
    assert report.operations >= 25 and report.cases >= EXAMPLES * report.operations
