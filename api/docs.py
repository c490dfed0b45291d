"""``/docs`` (Swagger UI) and ``/redoc`` served from assets shipped in a package, so they work offline, with the
bearer scheme declared (Swagger's Authorize button sends ``Authorization: Bearer <key>``)."""

from typing import Any

from fastapi import FastAPI
from fastapi_offline import FastAPIOffline

BEARER = "bearerAuth"  #: the security scheme's name in the OpenAPI document
DOCS_ASSETS_URL = "/docs-assets"  #: where Swagger UI's and ReDoc's scripts are served from


def docs_app(**kwargs: Any) -> FastAPI:
    """A FastAPI app whose docs pages load their scripts and styles from this server (no CDN)."""
    app = FastAPIOffline(static_url=DOCS_ASSETS_URL, **kwargs)
    app.openapi = lambda: _with_bearer(app)  # type: ignore[method-assign]
    return app


def _with_bearer(app: FastAPI) -> dict[str, Any]:
    if app.openapi_schema is None:
        schema = FastAPI.openapi(app)
        schema.setdefault("components", {}).setdefault("securitySchemes", {})[BEARER] = {
            "type": "http", "scheme": "bearer",
            "description": "An API key: `broker serve` prints one; `broker keys create` makes more."}
        schema["security"] = [{BEARER: []}]
    return app.openapi_schema or {}
