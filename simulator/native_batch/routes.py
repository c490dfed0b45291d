"""HTTP routes of the simulator's native batch API: OpenAI's Files and Batches endpoints, in memory.

``POST /v1/files`` (multipart), ``GET /v1/files``, ``GET|DELETE /v1/files/{id}``, ``GET /v1/files/{id}/content``,
``POST|GET /v1/batches``, ``GET /v1/batches/{id}``, ``POST /v1/batches/{id}/cancel``. Errors use OpenAI's
envelope. Turnaround, expiry and the injected failure rate come from the live :class:`SimulatorConfig`,
read when a batch is created.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from typing import Any

import orjson
from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from simulator.config import SimulatorConfig
from simulator.errors import RequestError, missing
from simulator.native_batch.lines import RunSettings
from simulator.native_batch.store import NativeBatch, NativeBatchStore, StoredFile
from simulator.responses import ENDPOINTS
from simulator.stats import SimulatorStats

JSON_MEDIA_TYPE = "application/json"  #: content type of every JSON answer
UPLOADABLE_PURPOSES = frozenset({"assistants", "batch", "fine-tune", "vision", "user_data", "evals"})
"""OpenAI's file purposes (the simulator keeps its own list: it stands for the upstream, not for us)."""
COMPLETION_WINDOWS = ("24h",)  #: completion windows accepted (OpenAI's only one)
DEFAULT_LIST_LIMIT = 20  #: batches per page of ``GET /v1/batches`` without ``limit``
MAX_LIST_LIMIT = 100  #: largest ``limit`` accepted by ``GET /v1/batches``
MAX_METADATA_PAIRS = 16  #: key-value pairs accepted in a batch's ``metadata``


class NativeBatchApi:
    """The routes, over one :class:`NativeBatchStore` (kept in ``store``)."""

    def __init__(self, config: SimulatorConfig, stats: SimulatorStats,
                 clock: Callable[[], float] = time.time) -> None:
        self.config = config
        self.store = NativeBatchStore(stats, clock)

    def routes(self) -> list[Route]:
        """The Starlette routes to mount in the simulator app."""
        return [
            Route("/v1/files", self._upload, methods=["POST"]),
            Route("/v1/files", self._list_files, methods=["GET"]),
            Route("/v1/files/{file_id}", self._get_file, methods=["GET"]),
            Route("/v1/files/{file_id}", self._delete_file, methods=["DELETE"]),
            Route("/v1/files/{file_id}/content", self._file_content, methods=["GET"]),
            Route("/v1/batches", self._create_batch, methods=["POST"]),
            Route("/v1/batches", self._list_batches, methods=["GET"]),
            Route("/v1/batches/{batch_id}", self._get_batch, methods=["GET"]),
            Route("/v1/batches/{batch_id}/cancel", self._cancel_batch, methods=["POST"]),
        ]

    async def _upload(self, request: Request) -> Response:
        try:
            async with request.form() as form:
                upload, purpose = form.get("file"), form.get("purpose")
                if not isinstance(upload, UploadFile):
                    raise missing("file")
                if not isinstance(purpose, str) or not purpose:
                    raise missing("purpose")
                if purpose not in UPLOADABLE_PURPOSES:
                    raise RequestError(f"'{purpose}' is not one of {sorted(UPLOADABLE_PURPOSES)} - 'purpose'",
                                       param="purpose", code="invalid_value")
                stored = self.store.add_file(upload.filename or "upload.jsonl", purpose, await upload.read())
        except RequestError as exc:
            return _error(exc)
        return _json(stored.to_dict())

    async def _list_files(self, request: Request) -> Response:
        purpose = request.query_params.get("purpose")
        files = [f.to_dict() for f in reversed(self.store.files.values()) if purpose in (None, f.purpose)]
        return _json(_page(files, has_more=False))

    async def _get_file(self, request: Request) -> Response:
        found = self._file(request)
        return found if isinstance(found, Response) else _json(found.to_dict())

    async def _delete_file(self, request: Request) -> Response:
        found = self._file(request)
        if isinstance(found, Response):
            return found
        del self.store.files[found.id]
        return _json({"id": found.id, "object": "file", "deleted": True})

    async def _file_content(self, request: Request) -> Response:
        found = self._file(request)
        if isinstance(found, Response):
            return found
        return Response(found.content, 200, _headers(), "application/octet-stream")

    def _file(self, request: Request) -> StoredFile | Response:
        file_id = request.path_params["file_id"]
        stored = self.store.files.get(file_id)
        if stored is None:
            return _error(RequestError(f"No such File object: {file_id}", param="id", status=404))
        return stored

    async def _create_batch(self, request: Request) -> Response:
        try:
            body = _json_object(await request.body())
            input_file_id, endpoint, window = (_required_str(body, name)
                                               for name in ("input_file_id", "endpoint", "completion_window"))
            if endpoint not in ENDPOINTS:
                raise RequestError(f"Invalid value for 'endpoint': {endpoint!r}. Supported values are: "
                                   f"{', '.join(ENDPOINTS)}.", param="endpoint", code="invalid_value")
            if window not in COMPLETION_WINDOWS:
                raise RequestError(f"Invalid value for 'completion_window': {window!r}. Supported values are: "
                                   f"{', '.join(COMPLETION_WINDOWS)}.", param="completion_window",
                                   code="invalid_value")
            metadata = _metadata(body.get("metadata"))
            source = self.store.files.get(input_file_id)
            if source is None:
                raise RequestError(f"No such File object: {input_file_id}", param="input_file_id", status=404)
            if source.purpose != "batch":
                raise RequestError(f"File {input_file_id} must have purpose 'batch' to be a batch input.",
                                   param="input_file_id", code="invalid_value")
        except RequestError as exc:
            return _error(exc)
        config = self.config
        settings = RunSettings(config.error_rate, config.embedding_dim, config.max_embedding_inputs)
        batch = self.store.create_batch(source, endpoint, window, metadata,
                                        turnaround=config.batch_turnaround_seconds,
                                        expire_after=config.batch_expire_after_seconds,
                                        settings=settings, seed=config.seed)
        return _json(batch.to_dict(creating=True))

    async def _list_batches(self, request: Request) -> Response:
        raw_limit = request.query_params.get("limit", str(DEFAULT_LIST_LIMIT))
        if not raw_limit.isdigit() or not 1 <= int(raw_limit) <= MAX_LIST_LIMIT:
            return _error(RequestError(f"Invalid 'limit': expected an integer between 1 and {MAX_LIST_LIMIT}.",
                                       param="limit", code="invalid_value"))
        page, has_more = self.store.listing(request.query_params.get("after"), int(raw_limit))
        return _json(_page([batch.to_dict() for batch in page], has_more=has_more))

    async def _get_batch(self, request: Request) -> Response:
        found = self._batch(request)
        return found if isinstance(found, Response) else _json(found.to_dict())

    async def _cancel_batch(self, request: Request) -> Response:
        found = self._batch(request)
        if isinstance(found, Response):
            return found
        if not self.store.cancel(found):
            return _error(RequestError(f"Cannot cancel a batch with status '{found.status}'.",
                                       code="batch_not_cancellable"))
        return _json(found.to_dict())

    def _batch(self, request: Request) -> NativeBatch | Response:
        batch_id = request.path_params["batch_id"]
        batch = self.store.get(batch_id)
        if batch is None:
            return _error(RequestError(f"No batch found with id '{batch_id}'.", param="batch_id", status=404))
        return batch


def _json_object(raw: bytes) -> dict[str, Any]:
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError:
        body = None
    if not isinstance(body, dict):
        raise RequestError("We could not parse the JSON body of your request. The OpenAI API expects a JSON "
                           "object.")
    return body


def _required_str(body: dict[str, Any], name: str) -> str:
    value = body.get(name)
    if value is None:
        raise missing(name)
    if not isinstance(value, str):
        raise RequestError(f"Invalid type for '{name}': expected a string.", param=name, code="invalid_type")
    return value


def _metadata(value: Any) -> dict[str, str] | None:
    if value is None:
        return None
    if (not isinstance(value, dict) or len(value) > MAX_METADATA_PAIRS
            or not all(isinstance(k, str) and isinstance(v, str) for k, v in value.items())):
        raise RequestError(f"Invalid 'metadata': expected at most {MAX_METADATA_PAIRS} string key-value pairs.",
                           param="metadata", code="invalid_value")
    return value


def _page(data: list[dict[str, Any]], *, has_more: bool) -> dict[str, Any]:
    return {"object": "list", "data": data, "first_id": data[0]["id"] if data else None,
            "last_id": data[-1]["id"] if data else None, "has_more": has_more}


def _headers() -> dict[str, str]:
    return {"x-request-id": f"req_{secrets.token_hex(12)}"}


def _json(payload: dict[str, Any], status: int = 200) -> Response:
    return Response(orjson.dumps(payload), status, _headers(), JSON_MEDIA_TYPE)


def _error(exc: RequestError) -> Response:
    return _json(exc.body(), exc.status)
