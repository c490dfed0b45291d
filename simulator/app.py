"""The simulator's ASGI app: OpenAI-compatible inference endpoints, Anthropic's Messages API, ``/_sim`` admin routes.

Per request: decode JSON (orjson), validate and measure (:mod:`.responses`), charge the rate limits
(:mod:`.limits`), maybe inject a failure, maybe sleep a lognormal latency, render the body. With the default
config (no latency, no limits, no errors) the path has no sleep, no lock and no logging. A :class:`Dialect`
says how one API shape validates, renders and words its errors and headers; the pipeline is the same for all.
"""

from __future__ import annotations

import asyncio
import logging
import math
import random
import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextvars import ContextVar
from typing import Any, Protocol

import orjson
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from simulator.anthropic import MESSAGES_PATH, MessageBatchApi, MessagesDialect
from simulator.config import SimulatorConfig
from simulator.errors import RequestError, error_body
from simulator.garbage import garbage
from simulator.limits import ORGANIZATION, RateLimiter
from simulator.native_batch import NativeBatchApi
from simulator.responses import (
    ENDPOINTS,
    SIM_ERROR_400_MARKER,
    SIM_SLOW_MARKER,
    Prepared,
    Rendered,
    prepare,
    render,
)
from simulator.stats import SimulatorStats
from simulator.streaming import STREAMED_PATHS, events

JSON_MEDIA_TYPE = "application/json"  #: content type of every answer
_MARKER = SIM_ERROR_400_MARKER.encode()
_SLOW = SIM_SLOW_MARKER.encode()
_INVALID_JSON = (
    "We could not parse the JSON body of your request. (HINT: This likely means you aren't using your HTTP "
    "library correctly. The OpenAI API expects a JSON payload, but what was sent was not valid JSON.)"
)
_SERVER_ERRORS: dict[str, tuple[int, dict[str, Any]]] = {
    "500": (500, error_body("The server had an error while processing your request. Sorry about that!",
                            "server_error")),
    "503": (503, error_body("The server is overloaded or not ready yet.", "server_error")),
}


class Dialect(Protocol):
    """One API shape served by the shared pipeline: how it validates and renders, and how it words errors
    and headers (the pipeline builds them in OpenAI's words)."""

    def prepare(self, path: str, body: dict[str, Any], config: SimulatorConfig) -> Prepared: ...

    def render(self, prepared: Prepared, ident: str, now: int, config: SimulatorConfig) -> Rendered: ...

    def error(self, status: int, payload: dict[str, Any]) -> dict[str, Any]: ...

    def headers(self, headers: dict[str, str]) -> dict[str, str]: ...

    def stream(self, path: str, payload: dict[str, Any], body: dict[str, Any]) -> Iterator[bytes] | None:
        """The SSE frames of ``payload`` when ``body`` asks for a stream ``path`` can send; else None."""


class OpenAIDialect:
    """OpenAI's endpoints (:mod:`.responses`): errors and headers as the pipeline builds them."""

    def prepare(self, path: str, body: dict[str, Any], config: SimulatorConfig) -> Prepared:
        return prepare(path, body, max_inputs=config.max_embedding_inputs)

    def render(self, prepared: Prepared, ident: str, now: int, config: SimulatorConfig) -> Rendered:
        return render(prepared, ident=ident, now=now, embedding_dim=config.embedding_dim)

    def error(self, status: int, payload: dict[str, Any]) -> dict[str, Any]:
        return payload

    def headers(self, headers: dict[str, str]) -> dict[str, str]:
        return headers

    def stream(self, path: str, payload: dict[str, Any], body: dict[str, Any]) -> Iterator[bytes] | None:
        return events(path, payload, body) if body.get("stream") is True and path in STREAMED_PATHS else None


OPENAI: Dialect = OpenAIDialect()

_dropping: ContextVar[bool] = ContextVar("simulator_dropping", default=False)


class _DropFilter(logging.Filter):
    """Silence uvicorn's "returned without completing response" for connections cut on purpose."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not _dropping.get()


_DROP_FILTER = _DropFilter()


class _DroppedResponse(Response):
    """Announces the full Content-Length, sends half the body and returns: the server closes the
    connection and the client sees an incomplete message (httpx: ``RemoteProtocolError``)."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        _dropping.set(True)
        await send({"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers})
        partial = self.body[: len(self.body) // 2]
        await send({"type": "http.response.body", "body": partial, "more_body": True})


class _GoneResponse(Response):
    """Nothing to send: the client already disconnected."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        return None



def draw_latency(config: SimulatorConfig, rng: random.Random, prepared: Prepared) -> float:
    """Seconds an answer takes, lognormal: ``rng``'s next draw, or (``latency_by_input``) one decided by the
    request's first input and the seed."""
    if config.latency_by_input and prepared.inputs:
        rng = random.Random(int.from_bytes(prepared.inputs[0][1][:8], "big") ^ config.seed)
    return rng.lognormvariate(math.log(config.latency_median_ms / 1000.0), config.latency_sigma)

class SimulatorApp:
    """The ASGI app with its live ``config``, ``stats`` and ``limiter``."""

    def __init__(self, config: SimulatorConfig) -> None:
        self.config = config
        self.stats = SimulatorStats()
        self.limiter = RateLimiter(config)
        self.models: dict[str, None] = dict.fromkeys(config.models)
        """Models listed by ``GET /v1/models``: configured ones, then every model seen (insertion order)."""
        self._rng = random.Random(config.seed)
        self._seed = config.seed
        self.native_batches = NativeBatchApi(config, self.stats)
        """The native batch API (``/v1/files``, ``/v1/batches``) and its in-memory store."""
        self.message_batches = MessageBatchApi(config, self.stats)
        """Anthropic's Message Batches API (``/v1/messages/batches``) and its in-memory store."""
        routes = [Route(path, self._endpoint(path), methods=["POST"]) for path in ENDPOINTS]
        routes.append(Route(MESSAGES_PATH, self._endpoint(MESSAGES_PATH, MessagesDialect()), methods=["POST"]))
        routes += self.native_batches.routes()
        routes += self.message_batches.routes()
        routes += [
            Route("/v1/models", self._list_models, methods=["GET"]),
            Route("/v1/models/{model:path}", self._get_model, methods=["GET"]),
            Route("/_sim/stats", self._get_stats, methods=["GET"]),
            Route("/_sim/config", self._get_config, methods=["GET"]),
            Route("/_sim/config", self._patch_config, methods=["POST", "PATCH"]),
            Route("/_sim/reset", self._reset, methods=["POST"]),
        ]
        handlers = {404: self._not_found, 405: self._not_found}
        self.starlette = Starlette(routes=routes, exception_handlers=handlers)
        uvicorn_logger = logging.getLogger("uvicorn.error")
        if _DROP_FILTER not in uvicorn_logger.filters:
            uvicorn_logger.addFilter(_DROP_FILTER)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.starlette(scope, receive, send)

    def apply_config(self, patch: dict[str, Any]) -> None:
        """Change config fields live (see :meth:`SimulatorConfig.apply`); a new seed restarts the draws."""
        self.config.apply(patch)
        for model in self.config.models:
            self.models.setdefault(model)
        if self.config.seed != self._seed:
            self._seed = self.config.seed
            self._rng.seed(self._seed)

    def reset(self, *, limits: bool = False) -> None:
        """Zero the stats; with ``limits``, also refill the rate-limit buckets."""
        self.stats.reset()
        if limits:
            self.limiter.reset()

    def _endpoint(self, path: str, dialect: Dialect = OPENAI) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            return await self._inference(request, path, dialect)

        return endpoint

    async def _inference(self, request: Request, path: str, dialect: Dialect) -> Response:
        started = time.perf_counter()
        stats = self.stats
        stats.begin(path)
        status: int | None = 500
        try:
            response = await self._answer(request, path, started, dialect)
            status = None if isinstance(response, _DroppedResponse | _GoneResponse) else response.status_code
            return response
        except asyncio.CancelledError:
            status = None
            raise
        finally:
            stats.finish(status)

    async def _answer(self, request: Request, path: str, started: float, dialect: Dialect) -> Response:
        raw = await request.body()
        try:
            body = orjson.loads(raw)
        except orjson.JSONDecodeError:
            body = None
        if not isinstance(body, dict):
            return self._json(400, error_body(_INVALID_JSON, "invalid_request_error"), started, dialect=dialect)
        config = self.config
        digest = self.stats.called(raw)
        try:
            if _MARKER in raw:
                message = f"Simulated invalid request ({SIM_ERROR_400_MARKER} found in the request)."
                raise RequestError(message, code="simulated_error")
            prepared = dialect.prepare(path, body, config)
        except RequestError as exc:
            return self._json(exc.status, exc.body(), started, dialect=dialect)
        self.stats.prompted(prepared.inputs)
        if prepared.model not in self.models:
            self.models[prepared.model] = None
        decision = self.limiter.check(prepared.model, prepared.prompt_tokens + prepared.reserved_tokens)
        if decision.error is not None:
            return self._json(429, decision.error, started, decision.headers, dialect=dialect)
        kind = self._draw_error()
        if kind == "timeout":
            if not await self._hang(request):
                return _GoneResponse()
        elif _SLOW in raw or config.latency_median_ms > 0:
            await asyncio.sleep(config.slow_seconds if _SLOW in raw else draw_latency(config, self._rng, prepared))
            if await request.is_disconnected():  # the caller died or gave up while we "generated"
                self.stats.abandoned += 1
                return _GoneResponse()
        if kind in _SERVER_ERRORS:
            status, error = _SERVER_ERRORS[kind]
            return self._json(status, error, started, decision.headers, dialect=dialect)
        now = int(time.time())
        ident = secrets.token_hex(12)
        rendered = dialect.render(prepared, ident, now, config)
        junk = garbage(raw, rendered.payload)
        if kind == "drop" or junk is not None:
            return self._broken(junk, rendered.payload, dialect.headers(self._headers(started, ident)))
        self.stats.prompt_tokens += prepared.prompt_tokens
        self.stats.completion_tokens += rendered.completion_tokens
        self.stats.answered(digest)
        return await self._success(path, rendered.payload, body, started, decision.headers, ident, dialect)

    async def _success(self, path: str, payload: dict[str, Any], body: dict[str, Any], started: float,
                       extra: dict[str, str], ident: str, dialect: Dialect) -> Response:
        """The answer as JSON, or with ``stream: true`` as server-sent events (:mod:`.streaming`); with a
        ``stream_delay_ms``, the JSON answer comes when its stream would have ended."""
        frames = dialect.stream(path, payload, body)
        if frames is not None:
            headers = dialect.headers({**self._headers(started, ident), **extra})
            return StreamingResponse(self._paced(frames), 200, headers, "text/event-stream")
        if self.config.stream_delay_ms > 0 and (whole := dialect.stream(path, payload, {**body, "stream": True})):
            await asyncio.sleep((sum(1 for _ in whole) - 1) * self.config.stream_delay_ms / 1000)
        return self._json(200, payload, started, extra, ident, dialect)

    async def _paced(self, frames: Iterator[bytes]) -> AsyncIterator[bytes]:
        """``frames`` sent one by one, ``stream_delay_ms`` apart, counted in ``streams_open`` until the last."""
        self.stats.streams_open += 1
        try:
            for n, frame in enumerate(frames):
                if n and self.config.stream_delay_ms > 0:
                    await asyncio.sleep(self.config.stream_delay_ms / 1000)
                yield frame
        finally:
            self.stats.streams_open -= 1

    def _broken(self, junk: bytes | None, payload: dict[str, Any], headers: dict[str, str]) -> Response:
        """A 200 with garbage for a body (a marker asked for ``junk``), else one dropped mid-body."""
        if junk is not None:
            return Response(junk, 200, headers, JSON_MEDIA_TYPE)
        self.stats.dropped += 1
        return _DroppedResponse(orjson.dumps(payload), 200, headers, JSON_MEDIA_TYPE)

    def _draw_error(self) -> str | None:
        config = self.config
        if config.error_rate <= 0 or self._rng.random() >= config.error_rate:
            return None
        self.stats.injected_errors += 1
        return self._rng.choice(config.error_kinds)

    async def _hang(self, request: Request) -> bool:
        """Hang up to ``hang_seconds``; False if the client left meanwhile (nothing more to send)."""
        self.stats.timeouts += 1
        receive = request.receive

        async def until_disconnect() -> None:
            while (await receive())["type"] != "http.disconnect":
                pass

        try:
            await asyncio.wait_for(until_disconnect(), self.config.hang_seconds)
        except TimeoutError:
            return True
        self.stats.client_disconnects += 1
        return False

    @staticmethod
    def _headers(started: float, ident: str | None = None) -> dict[str, str]:
        return {
            "x-request-id": f"req_{ident or secrets.token_hex(12)}",
            "openai-processing-ms": str(int((time.perf_counter() - started) * 1000)),
            "openai-organization": ORGANIZATION,
            "openai-version": "2020-10-01",
        }

    def _json(
        self,
        status: int,
        payload: dict[str, Any],
        started: float,
        extra: dict[str, str] | None = None,
        ident: str | None = None,
        dialect: Dialect = OPENAI,
    ) -> Response:
        headers = self._headers(started, ident)
        if extra:
            headers.update(extra)
        if status >= 400:
            payload = dialect.error(status, payload)
        return Response(orjson.dumps(payload), status, dialect.headers(headers), JSON_MEDIA_TYPE)

    async def _list_models(self, request: Request) -> Response:
        data = [_model_object(model) for model in list(self.models)]
        return Response(orjson.dumps({"object": "list", "data": data}), media_type=JSON_MEDIA_TYPE)

    async def _get_model(self, request: Request) -> Response:
        model = request.path_params["model"]
        if model not in self.models:
            message = f"The model '{model}' does not exist or you do not have access to it."
            return self._json(404, error_body(message, "invalid_request_error", None, "model_not_found"),
                              time.perf_counter())
        return Response(orjson.dumps(_model_object(model)), media_type=JSON_MEDIA_TYPE)

    async def _get_stats(self, request: Request) -> Response:
        return Response(orjson.dumps(self.stats.to_dict()), media_type=JSON_MEDIA_TYPE)

    async def _get_config(self, request: Request) -> Response:
        return Response(orjson.dumps(self.config.to_dict()), media_type=JSON_MEDIA_TYPE)

    async def _patch_config(self, request: Request) -> Response:
        try:
            patch = orjson.loads(await request.body())
            if not isinstance(patch, dict):
                raise ValueError("expected a JSON object of config fields")
            self.apply_config(patch)
        except (ValueError, TypeError) as exc:
            return self._json(400, error_body(str(exc), "invalid_request_error"), time.perf_counter())
        return Response(orjson.dumps(self.config.to_dict()), media_type=JSON_MEDIA_TYPE)

    async def _reset(self, request: Request) -> Response:
        raw = await request.body()
        try:
            options = orjson.loads(raw) if raw.strip() else {}
        except orjson.JSONDecodeError:
            return self._json(400, error_body(_INVALID_JSON, "invalid_request_error"), time.perf_counter())
        self.reset(limits=bool(isinstance(options, dict) and options.get("limits")))
        return Response(orjson.dumps(self.stats.to_dict()), media_type=JSON_MEDIA_TYPE)

    async def _not_found(self, request: Request, exc: Exception) -> Response:
        status = exc.status_code if isinstance(exc, HTTPException) else 404
        message = f"Invalid URL ({request.method} {request.url.path})"
        return self._json(status, error_body(message, "invalid_request_error"), time.perf_counter())


def _model_object(model: str) -> dict[str, Any]:
    return {"id": model, "object": "model", "created": 1700000000, "owned_by": "simulator"}


def create_app(config: SimulatorConfig | None = None) -> SimulatorApp:
    """A simulator app around ``config`` (shared, live: mutate it to change behaviour)."""
    return SimulatorApp(config if config is not None else SimulatorConfig())
