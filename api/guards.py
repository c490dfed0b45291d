"""A guard in front of every route: no NUL character in the path or the query string.

PostgreSQL text cannot hold NUL, so an id or ``after`` cursor carrying ``%00`` would fail inside the database
(a 500, and uvicorn then drops the keep-alive connection). No id, cursor or filter legitimately holds one.
"""

from urllib.parse import unquote_to_bytes

from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from schemas.errors import error_envelope


class RefuseNul:
    """ASGI middleware answering 400 invalid_request_error to a request whose path or query holds NUL."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and _holds_nul(scope):
            body = error_envelope("Null characters (%00) are not allowed in the URL.", "invalid_request_error")
            await JSONResponse(body, status_code=400)(scope, receive, send)
            return
        await self.app(scope, receive, send)


def _holds_nul(scope: Scope) -> bool:
    path: str = scope.get("path", "")
    query: bytes = scope.get("query_string", b"")
    return "\x00" in path or b"\x00" in unquote_to_bytes(query)
