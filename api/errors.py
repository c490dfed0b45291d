"""One place that turns errors into OpenAI's ``{"error": {...}}`` envelope."""

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException
from starlette.routing import Match

from broker.errors import ApiError
from schemas.errors import error_envelope

log = logging.getLogger(__name__)
_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE")  #: what an Allow header may list


#: parts of a pydantic error location that are not the parameter's name (sources and union member tags)
_NOT_PARAMS = frozenset({"body", "query", "path", "header", "str", "int", "float", "bool", "list", "dict"})


def error_response(status: int, message: str, type_: str, param: str | None = None,
                   code: str | None = None) -> JSONResponse:
    return JSONResponse(error_envelope(message, type_, param, code), status_code=status)


def api_error_response(exc: ApiError) -> JSONResponse:
    return error_response(exc.status_code, exc.message, exc.error_type, exc.param, exc.code)


async def _api_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ApiError)
    return api_error_response(exc)


async def _validation_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    first = exc.errors()[0] if exc.errors() else {"loc": (), "msg": "Invalid request"}
    if first.get("type") == "json_invalid":  # the loc is a character offset, not a parameter
        return error_response(400, "We could not parse the JSON body of your request.", "invalid_request_error")
    loc = [str(p) for p in first.get("loc", ()) if p not in _NOT_PARAMS]
    param = ".".join(loc) or None
    if first.get("type") == "extra_forbidden":  # OpenAI's words, and its null param, for an unknown field
        return error_response(400, f"Unrecognized request argument supplied: {param}", "invalid_request_error")
    msg = str(first.get("msg", "Invalid request")).removeprefix("Value error, ")
    message = msg + (f": '{param}'" if param else "")
    return error_response(400, message, "invalid_request_error", param)


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, HTTPException)
    message = "Not found" if exc.status_code == 404 else str(exc.detail)
    path = request.url.path
    if exc.status_code == 404 and not path.startswith("/v1/"):  # a base URL without /v1: say what was expected
        message = (f"Not found: {path}. The API lives under /v1: use the base URL "
                   f"{str(request.base_url).rstrip('/')}/v1 (for example {str(request.base_url).rstrip('/')}/v1"
                   f"{path if path != '/' else '/batches'}).")
    response = error_response(exc.status_code, message, "invalid_request_error")
    response.headers.update(exc.headers or {})
    if exc.status_code == 405:  # Starlette names the first route's methods only; every route of the path counts
        response.headers["allow"] = ", ".join(_allowed(request))
    return response


def _allowed(request: Request) -> list[str]:
    """The methods some route answers at the request's path."""
    return [method for method in _METHODS
            if any(route.matches({**request.scope, "method": method})[0] == Match.FULL
                   for route in request.app.routes)]


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    request_id = getattr(request.state, "request_id", None)
    log.exception("unhandled error (request %s)", request_id, exc_info=exc)
    response = error_response(500, "The server had an error while processing your request.", "server_error")
    if request_id is not None:  # this handler answers outside the middlewares, so it sets the id itself
        response.headers["x-request-id"] = request_id
    return response


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(ApiError, _api_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(HTTPException, _http_error)
    app.add_exception_handler(Exception, _unexpected)
