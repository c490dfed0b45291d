"""``x-request-id`` on every answer, as OpenAI sends it: the SDK exposes it as ``_request_id`` on each object.

A small ASGI middleware (no ``BaseHTTPMiddleware``: it would buffer streamed file downloads). The id is the
caller's own ``x-request-id`` when it sends a sane one (so a trace spans client and broker), else a new
``req_…``; handlers read it as ``request.state.request_id``, and one log line per request names it.
"""

import logging
import re
import time
from secrets import token_hex

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

HEADER = "x-request-id"
_HEADER_BYTES = HEADER.encode()  #: as the ASGI scope names it
_SANE_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")  #: a caller's id we echo; anything else gets a fresh one

log = logging.getLogger("api.requests")


def new_request_id() -> str:
    return f"req_{token_hex(16)}"


def _incoming(scope: Scope) -> str | None:
    for name, value in scope.get("headers", ()):
        if name == _HEADER_BYTES:
            text = value.decode("latin-1")
            return text if _SANE_ID.fullmatch(text) else None
    return None


class RequestIdMiddleware:
    """Gives each HTTP request an id: on ``request.state.request_id``, in the ``x-request-id`` header, in the log."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = _incoming(scope) or new_request_id()
        scope.setdefault("state", {})["request_id"] = request_id
        started, status = time.perf_counter(), 0

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                MutableHeaders(scope=message)[HEADER] = request_id
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            log.info("%s %s %d %s %.1fms", scope["method"], scope["path"], status or 500, request_id,
                     (time.perf_counter() - started) * 1000)
