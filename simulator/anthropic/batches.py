"""Anthropic's Message Batches on the simulator: ``/v1/messages/batches`` over the native batch store's clock.

A batch runs exactly like an OpenAI native batch (:mod:`simulator.native_batch.store`): its requests
fall due evenly over ``batch_turnaround_seconds``, an injected failure is drawn per request from
``error_rate``, ``batch_expire_after_seconds`` expires what has not run, and reading is what moves it forward.
Only the shapes differ: requests arrive inline (``{"requests": [{"custom_id", "params"}]}``), each runs as
``POST /v1/messages`` would, and the results are one JSONL stream of ``succeeded`` / ``errored`` / ``canceled``
/ ``expired`` lines, readable once the batch has ``ended``.

``POST /v1/messages/batches``, ``GET /v1/messages/batches``, ``GET /v1/messages/batches/{id}``,
``POST /v1/messages/batches/{id}/cancel``, ``GET /v1/messages/batches/{id}/results``.
"""

from __future__ import annotations

import random
import re
import secrets
import time
from collections.abc import Callable
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from simulator.anthropic.messages import (
    MESSAGES_PATH,
    anthropic_error,
    prepare_message,
    render_message,
    rfc3339,
)
from simulator.config import SimulatorConfig
from simulator.errors import RequestError
from simulator.native_batch import InputLine, LineRun, NativeBatch, NativeBatchStore, RunSettings
from simulator.native_batch.lines import INJECTED_FAILURE_STATUS
from simulator.native_batch.store import DEFAULT_WINDOW_SECONDS, TERMINAL_STATUSES
from simulator.responses import SIM_ERROR_400_MARKER
from simulator.stats import SimulatorStats

BATCHES_PATH = "/v1/messages/batches"  #: Anthropic's Message Batches collection
MAX_REQUESTS = 100_000  #: requests accepted in one Message Batch (Anthropic's cap)
DEFAULT_LIST_LIMIT = 20  #: batches per page of ``GET /v1/messages/batches`` without ``limit``
MAX_LIST_LIMIT = 1000  #: largest ``limit`` accepted
JSON_MEDIA_TYPE = "application/json"  #: content type of every JSON answer
JSONL_MEDIA_TYPE = "application/x-jsonl"  #: content type of the results stream
_CUSTOM_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")
_MARKER = SIM_ERROR_400_MARKER.encode()
_UNRUN_TYPES = {"cancelled": "canceled", "expired": "expired"}  #: result type of unrun requests, by end status


class MessageBatchStore(NativeBatchStore):
    """Message Batches kept as :class:`NativeBatch` objects and advanced by the native batch store's logic;
    requests run as ``POST /v1/messages`` would, and results are rendered on demand (no files)."""

    def create(self, requests: list[InputLine], *, turnaround: float, expire_after: float | None,
               settings: RunSettings, seed: int) -> NativeBatch:
        """Start a batch of validated requests (injected failures drawn as for OpenAI-shaped batches)."""
        self._created += 1
        batch = NativeBatch(
            id=f"msgbatch_{secrets.token_hex(12)}", endpoint=MESSAGES_PATH, input_file_id="",
            completion_window="24h", metadata=None, created_at=self.clock(), lines=requests, problems=[],
            turnaround=turnaround, expire_after=expire_after, settings=settings,
            rng=random.Random(f"{seed}/{self._created}"),
        )
        self.batches[batch.id] = batch
        self.stats.native_batches += 1
        return batch

    def _run_due(self, batch: NativeBatch, due: int) -> None:
        now = int(self.clock())
        for line in batch.lines[len(batch.runs):due]:
            run = run_request(line, batch.settings, batch.rng, now)
            batch.runs.append(run)
            self.stats.native_batch_lines += 1
            self.stats.native_batch_failed_lines += int(not run.ok)

    def _end(self, batch: NativeBatch, status: str, at: float) -> None:
        if status in _UNRUN_TYPES:
            self.stats.native_batch_failed_lines += len(batch.lines) - len(batch.runs)
        batch.status, batch.ended_at = status, at


def run_request(line: InputLine, settings: RunSettings, rng: random.Random, now: int) -> LineRun:
    """Answer one request: a 400 for invalid params, an injected 500 (drawn from ``rng``), else a Message."""
    ident = secrets.token_hex(12)
    request_id = f"req_{ident}"
    try:
        if _MARKER in orjson.dumps(line.body):
            raise RequestError(f"Simulated invalid request ({SIM_ERROR_400_MARKER} found in the request).")
        prepared = prepare_message(line.body)
    except RequestError as exc:
        return LineRun(line.custom_id, exc.status, request_id, anthropic_error(exc.status, exc.message, request_id))
    if settings.error_rate > 0 and rng.random() < settings.error_rate:
        return LineRun(line.custom_id, INJECTED_FAILURE_STATUS, request_id,
                       anthropic_error(INJECTED_FAILURE_STATUS, "Internal server error", request_id))
    rendered = render_message(prepared, ident, now)
    return LineRun(line.custom_id, 200, request_id, rendered.payload, prepared.prompt_tokens,
                   rendered.completion_tokens)


def batch_object(batch: NativeBatch, base_url: str) -> dict[str, Any]:
    """Anthropic's MessageBatch object."""
    ended = batch.status in TERMINAL_STATUSES
    succeeded = sum(run.ok for run in batch.runs)
    unrun = len(batch.lines) - len(batch.runs)
    end_type = _UNRUN_TYPES.get(batch.status) if ended else None
    window = batch.expire_after if batch.expire_after is not None else DEFAULT_WINDOW_SECONDS
    return {
        "id": batch.id,
        "type": "message_batch",
        "processing_status": "ended" if ended else "canceling" if batch.status == "cancelling" else "in_progress",
        "request_counts": {"processing": 0 if ended else unrun, "succeeded": succeeded,
                           "errored": len(batch.runs) - succeeded, "canceled": unrun if end_type == "canceled" else 0,
                           "expired": unrun if end_type == "expired" else 0},
        "ended_at": rfc3339(batch.ended_at),
        "created_at": rfc3339(batch.created_at),
        "expires_at": rfc3339(batch.created_at + window),
        "archived_at": None,
        "cancel_initiated_at": rfc3339(batch.cancelling_at),
        "results_url": f"{base_url}{BATCHES_PATH}/{batch.id}/results" if ended else None,
    }


def results_jsonl(batch: NativeBatch) -> bytes:
    """The results of an ended batch: one line per request, run ones first."""
    out = bytearray()
    for run in batch.runs:
        result = {"type": "succeeded", "message": run.body} if run.ok else {"type": "errored", "error": run.body}
        out += orjson.dumps({"custom_id": run.custom_id, "result": result}) + b"\n"
    end_type = _UNRUN_TYPES.get(batch.status)
    for line in batch.lines[len(batch.runs):] if end_type else ():
        out += orjson.dumps({"custom_id": line.custom_id, "result": {"type": end_type}}) + b"\n"
    return bytes(out)


def parse_requests(body: Any) -> list[InputLine]:
    """The ``requests`` of a create call; raise :class:`RequestError` (400) for the whole batch as Anthropic
    does (each request's ``params`` are checked when it runs)."""
    requests = body.get("requests") if isinstance(body, dict) else None
    if not isinstance(requests, list) or not requests:
        raise RequestError("requests: Field required" if requests is None else "requests: at least one request "
                           "is required")
    if len(requests) > MAX_REQUESTS:
        raise RequestError(f"requests: at most {MAX_REQUESTS} requests are allowed in a batch")
    lines: list[InputLine] = []
    seen: set[str] = set()
    for i, request in enumerate(requests):
        custom_id = request.get("custom_id") if isinstance(request, dict) else None
        if not isinstance(custom_id, str) or not _CUSTOM_ID.fullmatch(custom_id):
            raise RequestError(f"requests.{i}.custom_id: String should match pattern '^[a-zA-Z0-9_-]{{1,64}}$'")
        if custom_id in seen:
            raise RequestError(f"Duplicate custom_id '{custom_id}': each request needs a unique custom_id.")
        seen.add(custom_id)
        params = request.get("params")
        if not isinstance(params, dict):
            raise RequestError(f"requests.{i}.params: Field required")
        lines.append(InputLine(custom_id, params))
    return lines


class MessageBatchApi:
    """The Message Batches routes over one :class:`MessageBatchStore` (kept in ``store``)."""

    def __init__(self, config: SimulatorConfig, stats: SimulatorStats,
                 clock: Callable[[], float] = time.time) -> None:
        self.config = config
        self.store = MessageBatchStore(stats, clock)

    def routes(self) -> list[Route]:
        """The Starlette routes to mount in the simulator app."""
        return [
            Route(BATCHES_PATH, self._create, methods=["POST"]),
            Route(BATCHES_PATH, self._list, methods=["GET"]),
            Route(BATCHES_PATH + "/{batch_id}", self._get, methods=["GET"]),
            Route(BATCHES_PATH + "/{batch_id}/cancel", self._cancel, methods=["POST"]),
            Route(BATCHES_PATH + "/{batch_id}/results", self._results, methods=["GET"]),
        ]

    async def _create(self, request: Request) -> Response:
        try:
            body = orjson.loads(await request.body())
        except orjson.JSONDecodeError:
            return _error(400, "There was an error parsing the body of your request: it is not valid JSON.")
        try:
            requests = parse_requests(body)
        except RequestError as exc:
            return _error(exc.status, exc.message)
        config = self.config
        settings = RunSettings(config.error_rate, config.embedding_dim, config.max_embedding_inputs)
        batch = self.store.create(requests, turnaround=config.batch_turnaround_seconds,
                                  expire_after=config.batch_expire_after_seconds, settings=settings, seed=config.seed)
        return _json(batch_object(batch, _base(request)))

    async def _list(self, request: Request) -> Response:
        raw_limit = request.query_params.get("limit", str(DEFAULT_LIST_LIMIT))
        if not raw_limit.isdigit() or not 1 <= int(raw_limit) <= MAX_LIST_LIMIT:
            return _error(400, f"limit: Input should be between 1 and {MAX_LIST_LIMIT}")
        page, has_more = self.store.listing(request.query_params.get("after_id"), int(raw_limit))
        data = [batch_object(batch, _base(request)) for batch in page]
        return _json({"data": data, "has_more": has_more, "first_id": data[0]["id"] if data else None,
                      "last_id": data[-1]["id"] if data else None})

    async def _get(self, request: Request) -> Response:
        found = self._batch(request)
        return found if isinstance(found, Response) else _json(batch_object(found, _base(request)))

    async def _cancel(self, request: Request) -> Response:
        found = self._batch(request)
        if isinstance(found, Response):
            return found
        if found.status != "cancelling" and not self.store.cancel(found):
            return _error(400, f"Message Batch {found.id} has already ended and cannot be canceled.")
        return _json(batch_object(found, _base(request)))

    async def _results(self, request: Request) -> Response:
        found = self._batch(request)
        if isinstance(found, Response):
            return found
        if found.status not in TERMINAL_STATUSES:
            return _error(400, f"Message Batch {found.id} has not yet ended; its results are available once its "
                          "processing_status is 'ended'.")
        return Response(results_jsonl(found), 200, _headers(), JSONL_MEDIA_TYPE)

    def _batch(self, request: Request) -> NativeBatch | Response:
        batch_id = request.path_params["batch_id"]
        batch = self.store.get(batch_id)
        if batch is None:
            return _error(404, f"No Message Batch found with id '{batch_id}'.")
        return batch


def _base(request: Request) -> str:
    return str(request.base_url).rstrip("/")


def _headers() -> dict[str, str]:
    return {"request-id": f"req_{secrets.token_hex(12)}"}


def _json(payload: dict[str, Any], status: int = 200) -> Response:
    return Response(orjson.dumps(payload), status, _headers(), JSON_MEDIA_TYPE)


def _error(status: int, message: str) -> Response:
    return _json(anthropic_error(status, message), status)
