"""Schemathesis over a running API: every operation of its OpenAPI document, positive and negative data, with a
valid key. Used by tests/api/test_fuzz.py (SQLite) and tests/integration/test_fuzz_pg.py (PostgreSQL)."""

from collections import Counter
from dataclasses import dataclass, field

import requests
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import ignored_auth, status_code_conformance

#: no 5xx; every status documented for its operation; an operation declaring the bearer scheme refuses no key
CHECKS = [not_a_server_error, status_code_conformance, ignored_auth]


@dataclass
class FuzzReport:
    operations: int = 0
    statuses: Counter[int] = field(default_factory=Counter)  #: every status the fuzzer's cases got
    failures: list[str] = field(default_factory=list)  #: each failing operation and mode, with schemathesis' report

    @property
    def cases(self) -> int:
        return self.statuses.total()

    @property
    def server_errors(self) -> int:
        return sum(n for status, n in self.statuses.items() if status >= 500)

    def summary(self) -> str:
        return (f"fuzzing: {self.cases} cases over {self.operations} operations, server errors: "
                f"{self.server_errors}, statuses: {dict(sorted(self.statuses.items()))}")


def _fuzz(operation: schemathesis.APIOperation, mode: GenerationMode, examples: int, auth: dict[str, str],
          http: requests.Session, statuses: Counter[int]) -> None:
    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(max_examples=examples, deadline=None, derandomize=True, database=None,
              suppress_health_check=list(HealthCheck))
    def run(case: schemathesis.Case) -> None:
        response = case.call(headers=auth, session=http)
        statuses[response.status_code] += 1
        case.validate_response(response, checks=CHECKS, headers=auth)

    run()


def fuzz(server_url: str, key: str, examples: int) -> FuzzReport:
    """Fuzz every operation of ``server_url``'s /openapi.json with ``examples`` cases per generation mode."""
    schema = schemathesis.openapi.from_url(server_url + "/openapi.json")
    auth = {"Authorization": f"Bearer {key}"}
    report = FuzzReport()
    operations = [result.ok() for result in schema.get_all_operations()]
    report.operations = len(operations)
    with requests.Session() as http:
        for operation in operations:
            for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
                try:
                    _fuzz(operation, mode, examples, auth, http, report.statuses)
                except Unsatisfiable:  # an operation without parameters has no invalid input to send
                    continue
                except Exception as exc:  # noqa: BLE001 -- every operation is fuzzed; the failures are listed
                    report.failures.append(f"{operation.label} ({mode}): {exc}")
    return report
