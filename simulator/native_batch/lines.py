"""The lines of a native batch: OpenAI's input checks, and running one line as the real-time endpoint would.

A line's answer is exactly what ``POST <endpoint>`` would have returned for its body (same
:func:`~simulator.responses.prepare` / :func:`~simulator.responses.render`), except that rate
limits, latency, hangs and dropped connections do not apply: an injected failure is a plain 500 body.
"""

from __future__ import annotations

import random
import secrets
from dataclasses import dataclass
from typing import Any

import orjson

from simulator.errors import RequestError, error_body
from simulator.responses import SIM_ERROR_400_MARKER, prepare, render

MAX_BATCH_LINES = 50_000  #: requests accepted in one batch input file (OpenAI's cap)
INJECTED_FAILURE_STATUS = 500  #: HTTP status of a line that drew an injected error
INJECTED_FAILURE_BODY: dict[str, Any] = error_body(
    "The server had an error while processing your request. Sorry about that!", "server_error")
"""Body of a line that drew an injected error (the real-time endpoint's 500 body)."""
_MARKER = SIM_ERROR_400_MARKER.encode()


@dataclass(frozen=True, slots=True)
class InputLine:
    """A valid request line of a batch input file."""

    custom_id: str
    body: dict[str, Any]


@dataclass(frozen=True, slots=True)
class LineProblem:
    """Why a batch failed validation: one entry of the batch's ``errors.data``."""

    code: str
    message: str
    line: int | None = None
    param: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"code": self.code, "line": self.line, "message": self.message, "param": self.param}


@dataclass(frozen=True, slots=True)
class LineRun:
    """How one line ran: its HTTP status, request id, body and token usage (0 for a failed line)."""

    custom_id: str
    status_code: int
    request_id: str
    body: dict[str, Any]
    prompt_tokens: int = 0
    completion_tokens: int = 0

    @property
    def ok(self) -> bool:
        return self.status_code == 200


@dataclass(frozen=True, slots=True)
class RunSettings:
    """The config a batch runs with, taken when it is created (later config changes do not affect it)."""

    error_rate: float
    embedding_dim: int
    max_embedding_inputs: int


def parse_input(content: bytes, endpoint: str, max_lines: int = MAX_BATCH_LINES
                ) -> tuple[list[InputLine], list[LineProblem]]:
    """Check an input file line by line as OpenAI does; returns the valid lines and every problem found."""
    lines: list[InputLine] = []
    problems: list[LineProblem] = []
    seen: set[str] = set()
    for lineno, raw in enumerate(content.splitlines(), start=1):
        if not raw.strip():
            continue
        checked = _check_line(lineno, raw, endpoint, seen)
        if isinstance(checked, LineProblem):
            problems.append(checked)
        else:
            lines.append(checked)
    count = len(lines) + len(problems)
    if count == 0:
        problems.append(LineProblem("empty_file", "The batch input file is empty."))
    elif count > max_lines:
        problems.append(LineProblem("too_many_tasks", f"The input file has {count} requests; the limit is "
                                    f"{max_lines}.", param="input_file_id"))
    return lines, problems


def _check_line(lineno: int, raw: bytes, endpoint: str, seen: set[str]) -> InputLine | LineProblem:
    try:
        obj = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return LineProblem("invalid_json_line", "This line is not parseable as valid JSON.", lineno)
    if not isinstance(obj, dict):
        return LineProblem("invalid_json_line", "Each line must be a JSON object.", lineno)
    custom_id = obj.get("custom_id")
    if not isinstance(custom_id, str) or not custom_id:
        return _missing(lineno, "custom_id")
    if custom_id in seen:
        return LineProblem("duplicate_custom_id", "The custom_id for this request is a duplicate of another "
                           "request. The custom_id parameter must be unique for each request in a batch.",
                           lineno, "custom_id")
    seen.add(custom_id)
    if obj.get("method") != "POST":
        return LineProblem("invalid_method", "The method of every request must be 'POST'.", lineno, "method")
    if obj.get("url") != endpoint:
        return LineProblem("invalid_url", f"The URL provided for this request does not match the batch "
                           f"endpoint ({endpoint!r}).", lineno, "url")
    body = obj.get("body")
    if not isinstance(body, dict):
        return _missing(lineno, "body") if body is None else LineProblem(
            "invalid_body", "The body of a request must be a JSON object.", lineno, "body")
    return InputLine(custom_id, body)


def _missing(lineno: int, param: str) -> LineProblem:
    return LineProblem("missing_required_parameter", f"Missing required parameter: '{param}'.", lineno, param)


def run_line(line: InputLine, endpoint: str, settings: RunSettings, rng: random.Random, now: int) -> LineRun:
    """Answer one line: a 4xx for an invalid body, an injected 500 (drawn from ``rng``), else a 200."""
    ident = secrets.token_hex(12)
    request_id = f"req_{ident}"
    try:
        if _MARKER in orjson.dumps(line.body):
            message = f"Simulated invalid request ({SIM_ERROR_400_MARKER} found in the request)."
            raise RequestError(message, code="simulated_error")
        prepared = prepare(endpoint, line.body, max_inputs=settings.max_embedding_inputs)
    except RequestError as exc:
        return LineRun(line.custom_id, exc.status, request_id, exc.body())
    if settings.error_rate > 0 and rng.random() < settings.error_rate:
        return LineRun(line.custom_id, INJECTED_FAILURE_STATUS, request_id, INJECTED_FAILURE_BODY)
    rendered = render(prepared, ident=ident, now=now, embedding_dim=settings.embedding_dim)
    return LineRun(line.custom_id, 200, request_id, rendered.payload, prepared.prompt_tokens,
                   rendered.completion_tokens)


def result_line(custom_id: str, run: LineRun | None, error: tuple[str, str] | None = None) -> dict[str, Any]:
    """One output/error file line in OpenAI's format: an HTTP ``response``, or a non-HTTP ``error``."""
    response = None if run is None else {"status_code": run.status_code, "request_id": run.request_id,
                                         "body": run.body}
    failure = None if error is None else {"code": error[0], "message": error[1]}
    return {"id": f"batch_req_{secrets.token_hex(12)}", "custom_id": custom_id, "response": response,
            "error": failure}
