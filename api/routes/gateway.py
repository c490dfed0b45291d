"""The real-time gateway: OpenAI's inference endpoints, answered by the catalogue's deployments as they come.

Every call runs under its project's rules (broker/gateway.py) and the providers' shared capacity, ahead of batch
lines (providers/gateway.py). Extensions in the body: ``priority`` and ``constraints``, as on a batch; a
``x-broker-max-wait`` header shortens how long the call may wait for capacity. The answer names its deployment in
``x-broker-provider``.

The routes are FastAPI's (the OpenAPI document, and any call that reaches the router), but calls are served by
:class:`GatewayLane`, a middleware that hands them to their endpoint before FastAPI's exception middleware, exit
stacks, router and request handler: on a call that takes about a millisecond of CPU, those layers were a tenth of it.
"""

import math
import time
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response, StreamingResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from api.context import ApiContext
from api.deps import project_and_key_briefly
from api.errors import api_error_response, error_response
from api.openapi import errors
from broker.errors import ApiError, InvalidRequest, ProviderBusy, UpstreamError
from broker.gateway import CallPlan, plan_call
from providers.gateway import Answer
from schemas.errors import error_envelope

PROVIDER_HEADER = "x-broker-provider"  #: the deployment that answered
MAX_WAIT_HEADER = "x-broker-max-wait"  #: seconds this call may wait for capacity (capped by the setting)
STREAMED = frozenset({"/v1/chat/completions", "/v1/completions", "/v1/responses"})
JSON = "application/json"
KEY_TTL_SECONDS = 5.0  #: how long an API key's project is remembered by an API process
MAX_KEYS_REMEMBERED = 10_000  #: keys remembered at most (all are forgotten at once past this)
_OPENAPI = {"requestBody": {"content": {JSON: {"schema": {"type": "object"}}}, "required": True}}


router = APIRouter(tags=["gateway"])


async def _body(request: Request) -> dict[str, Any]:
    try:
        body = orjson.loads(await request.body())
    except orjson.JSONDecodeError:
        body = None
    if not isinstance(body, dict):
        raise InvalidRequest("We could not parse the JSON body of your request: expected a JSON object.")
    return body


def _max_wait(setting: float, asked: str | None) -> float:
    if asked is None:
        return setting
    try:
        wait = float(asked)
    except ValueError:
        raise InvalidRequest(f"{MAX_WAIT_HEADER} must be a number of seconds.", param=MAX_WAIT_HEADER) from None
    return max(0.0, min(setting, wait))


def _failed(exc: UpstreamError) -> Response:
    """Every deployment failed: the last upstream answer as it was, or 502 when there was none."""
    if exc.status is not None and exc.body:
        return Response(exc.body, exc.status, media_type=JSON)
    return Response(orjson.dumps(error_envelope(exc.message, "server_error", None, exc.code)), 502, media_type=JSON)


def _caller(request: Request) -> str:
    """What names the caller's project: its key and the ``OpenAI-Project`` header an admin key may send."""
    return f"{request.headers.get('authorization', '')}|{request.headers.get('openai-project', '')}"


def _remembered(ctx: ApiContext, caller: str) -> tuple[str, str | None] | None:
    seen = ctx.projects_by_key.get(caller)
    return (seen[0], seen[1]) if seen is not None and time.monotonic() - seen[2] < KEY_TTL_SECONDS else None


def _project(ctx: ApiContext, request: Request) -> tuple[str, str | None]:
    """The caller's project and key id, as the key said them less than KEY_TTL_SECONDS ago (a revoked key stops
    within that), by the same rules as every other route (api/deps.py: key kind, scope, archived project, last use)."""
    caller = _caller(request)
    if (remembered := _remembered(ctx, caller)) is not None:
        return remembered
    project_id, key_id = project_and_key_briefly(request, ctx, request.headers.get("authorization"),
                                                 request.headers.get("openai-project"))
    if len(ctx.projects_by_key) >= MAX_KEYS_REMEMBERED:
        ctx.projects_by_key.clear()
    ctx.projects_by_key[caller] = (project_id, key_id, time.monotonic())
    return project_id, key_id


async def _serve(request: Request, endpoint: str, ctx: ApiContext, max_wait: str | None) -> Response:
    body = await _body(request)
    core, gateway = ctx.core, ctx.gateway()

    def plan(project_id: str, key_id: str | None) -> CallPlan:
        return plan_call(gateway.policies, core.catalogue, project_id, endpoint, body, key_id)

    known = _remembered(ctx, _caller(request))
    if known is not None and gateway.policies.fresh(*known):  # no query: no thread
        gateway.keep_fresh(*known)
        call_plan = plan(*known)
    else:
        call_plan = await run_in_threadpool(lambda: plan(*_project(ctx, request)))
    wait = _max_wait(core.settings.interactive_max_wait_seconds, max_wait)
    try:
        if body.get("stream") is True and endpoint in STREAMED:
            stream = await gateway.stream(call_plan, endpoint, wait)
            return StreamingResponse(stream.events, media_type="text/event-stream",
                                     headers={PROVIDER_HEADER: stream.provider, "cache-control": "no-cache"})
        answer = await gateway.call(call_plan, endpoint, wait)
    except ProviderBusy as exc:
        busy = error_response(429, exc.message, exc.error_type, None, exc.code)
        busy.headers["retry-after"] = str(max(1, math.ceil(exc.retry_after)))
        return busy
    except UpstreamError as exc:
        return _failed(exc)
    return _Answered(answer)


class _Answered(Response):
    """An upstream's answer, passed on as it came; its call is settled once it is written (or the client left)."""

    def __init__(self, answer: Answer) -> None:
        headers = {PROVIDER_HEADER: answer.provider}
        if answer.request_id:
            headers["x-upstream-request-id"] = answer.request_id
        super().__init__(answer.content, answer.status, headers=headers, media_type=JSON)
        self.settle = answer.settle

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            await self.settle()


def _endpoint(path: str) -> Callable[[Request], Awaitable[Response]]:
    async def serve(request: Request) -> Response:  # no FastAPI dependencies: GatewayLane calls it as it is
        ctx: ApiContext = request.app.state.context
        return await _serve(request, path, ctx, request.headers.get(MAX_WAIT_HEADER))

    serve.__name__ = path.removeprefix("/v1/")
    return serve


ENDPOINTS = {path: _endpoint(path) for path in
             ("/v1/chat/completions", "/v1/completions", "/v1/embeddings", "/v1/responses", "/v1/moderations")}


class GatewayLane:
    """ASGI middleware, inside the request id and the URL guard (api/app.py): a POST to a gateway path goes straight
    to its endpoint. The API's errors are answered as the app's handler answers them; any other exception goes up
    to the app's server-error handler, as it would from the route. A request under a ``root_path`` takes the router."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        endpoint = ENDPOINTS.get(scope["path"]) if scope["type"] == "http" and scope["method"] == "POST" \
            and not scope.get("root_path") else None
        if endpoint is None:
            await self.app(scope, receive, send)
            return
        try:
            response = await endpoint(Request(scope, receive))
        except ApiError as exc:
            response = api_error_response(exc)
        await response(scope, receive, send)


_PARAMETERS = [{"name": MAX_WAIT_HEADER, "in": "header", "required": False, "schema": {"type": "number"},
                "description": "Seconds this call may wait for provider capacity (capped by the server's setting)."}]
for _path, _serve_path in ENDPOINTS.items():
    # 404: a model the catalogue lacks or the project may not use; 429: no capacity in time, or a spent budget;
    # 502: every deployment failed with no answer to pass on (an upstream's own error answer is passed through)
    router.add_api_route(_path, _serve_path, methods=["POST"], response_class=Response,
                         responses=errors(404, 429, 502), openapi_extra={**_OPENAPI, "parameters": _PARAMETERS})
