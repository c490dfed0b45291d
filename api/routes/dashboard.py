"""``/dashboard``: the web dashboard, plain HTML + ES modules + CSS shipped in this package (no CDN, no build step).

The page signs in with an API key and reads only the public ``/v1`` API, so each number it shows has a call behind
it. ``/`` sends a browser there.
"""

from pathlib import Path

from fastapi import APIRouter, FastAPI
from fastapi.responses import FileResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles

ASSETS = Path(__file__).resolve().parent.parent / "dashboard"  #: shipped as package data (pyproject.toml)
ASSETS_URL = "/dashboard/assets"
#: the page may load and call only its own origin: nothing leaves an air-gapped host, nothing injected runs
CSP = ("default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; connect-src 'self'; "
       "frame-ancestors 'none'; base-uri 'none'; form-action 'self'")

router = APIRouter(include_in_schema=False)


@router.get("/")
def landing() -> RedirectResponse:
    return RedirectResponse("/dashboard", status_code=307)


@router.get("/dashboard")
def dashboard() -> FileResponse:
    return FileResponse(ASSETS / "index.html", media_type="text/html; charset=utf-8",
                        headers={"Content-Security-Policy": CSP, "Cache-Control": "no-cache",
                                 "X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer"})


def install_dashboard(app: FastAPI) -> None:
    app.include_router(router)
    app.mount(ASSETS_URL, StaticFiles(directory=ASSETS), name="dashboard-assets")
