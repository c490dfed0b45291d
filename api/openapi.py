"""The OpenAPI document states every status the API answers, each error with OpenAI's envelope.

Every ``/v1`` operation declares the bearer scheme and can answer 400 (a bad parameter, or ``%00`` in its URL:
api/guards.py) and 401 (no or a wrong key); one with a path parameter also 404; every write, and every
``/v1/organization`` operation, 403 (a read_only key, an archived project, a project key on an admin endpoint).
A route declares the others it answers with ``responses=errors(...)`` (413 on upload, 429 under strict admission,
404 for an id in its body, 409). FastAPI's 422 never happens (api/errors.py answers 400 instead), so it is taken out.
"""

from typing import Any

from fastapi import FastAPI

from api.docs import BEARER
from schemas.errors import ErrorResponse

ERROR_SCHEMA = "ErrorResponse"  #: the component every error status refers to
DESCRIPTIONS = {
    400: "Invalid request (OpenAI's invalid_request_error)",
    401: "Missing or incorrect API key",
    403: "The key may not do this",
    404: "No such object in the caller's project",
    409: "The object's state does not allow this",
    413: "The upload is larger than the server accepts",
    429: "Refused for now: a rate or capacity limit",
    502: "Every upstream deployment failed without an answer to pass on",
}
def _error(status: int) -> dict[str, Any]:
    return {"description": DESCRIPTIONS[status],
            "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{ERROR_SCHEMA}"}}}}


def errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """A route's ``responses=`` for the error statuses it answers beyond those every operation documents."""
    return {status: _error(status) for status in statuses}


def _complete(schema: dict[str, Any]) -> dict[str, Any]:
    for path, operations in schema.get("paths", {}).items():
        for method, operation in operations.items():
            responses: dict[str, Any] = operation.setdefault("responses", {})
            responses.pop("422", None)
            implied = [400, 401] if path.startswith("/v1/") else []
            if "{" in path:
                implied.append(404)
            if path.startswith("/v1/organization/") or (path.startswith("/v1/") and method != "get"):
                implied.append(403)
            for status in implied:
                responses.setdefault(str(status), _error(status))
            operation["security"] = [{BEARER: []}] if path.startswith("/v1/") else []  # /healthz needs no key
            if path.startswith("/v1/"):
                # the key is the bearer scheme's, not a parameter of each operation (api/deps.py reads it)
                params = [p for p in operation.get("parameters", []) if p.get("name") != "authorization"]
                if params:
                    operation["parameters"] = params
                else:
                    operation.pop("parameters", None)
    components = schema.setdefault("components", {})
    schemas = components.setdefault("schemas", {})
    for unused in ("HTTPValidationError", "ValidationError"):
        schemas.pop(unused, None)
    defs = ErrorResponse.model_json_schema(ref_template="#/components/schemas/{model}")
    schemas.update(defs.pop("$defs", {}))
    schemas[ERROR_SCHEMA] = defs
    components.setdefault("securitySchemes", {}).setdefault(BEARER, {"type": "http", "scheme": "bearer"})
    return schema


def install_openapi(app: FastAPI) -> None:
    """Serve the app's document (api/docs.py's, with the bearer scheme) completed as above, built once."""
    build = app.openapi
    completed: list[dict[str, Any]] = []

    def openapi() -> dict[str, Any]:
        if not completed:
            completed.append(_complete(build()))
        return completed[0]

    app.openapi = openapi  # type: ignore[method-assign]
