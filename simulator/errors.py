"""OpenAI's error envelope and the request checks that raise it.

:class:`RequestError` is the one error type of the simulator's request handling: it carries the HTTP status
(400 unless told) and the ``{"error": {"message", "type", "param", "code"}}`` fields.
"""

from __future__ import annotations

from typing import Any


class RequestError(Exception):
    """An invalid request, answered with OpenAI's error envelope (400 unless told)."""

    def __init__(
        self,
        message: str,
        *,
        param: str | None = None,
        code: str | None = None,
        status: int = 400,
        err_type: str = "invalid_request_error",
    ) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        self.code = code
        self.status = status
        self.err_type = err_type

    def body(self) -> dict[str, Any]:
        """The ``{"error": {...}}`` body for this error."""
        return error_body(self.message, self.err_type, self.param, self.code)


def error_body(
    message: str, err_type: str, param: str | None = None, code: str | None = None
) -> dict[str, Any]:
    """OpenAI's error envelope."""
    return {"error": {"message": message, "type": err_type, "param": param, "code": code}}


def require_model(body: dict[str, Any]) -> str:
    """The request's ``model``; 400 (param "model") if missing or not a non-empty string."""
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise RequestError("you must provide a model parameter", param="model")
    return model


def positive_int(body: dict[str, Any], name: str, upper: int | None = None) -> int | None:
    """The optional integer field ``name`` (1..upper), or None when absent; 400 if invalid."""
    value = body.get(name)
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or value < 1 or (upper and value > upper):
        bound = f" and at most {upper}" if upper else ""
        raise RequestError(f"Invalid '{name}': expected an integer of at least 1{bound}.", param=name,
                           code="invalid_value")
    return value


def missing(name: str) -> RequestError:
    """The error for a missing required parameter."""
    return RequestError(f"Missing required parameter: '{name}'.", param=name,
                        code="missing_required_parameter")
