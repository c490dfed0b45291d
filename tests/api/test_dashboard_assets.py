"""The dashboard's assets: served with the right types, shipped as package data, and loading nothing off the host."""

import fnmatch
import re
import tomllib
from pathlib import Path

import httpx
import pytest

from api.routes.dashboard import ASSETS, ASSETS_URL
from tests.harness import EmbeddedBroker

BROKER_OPTIONS = {"workers": False, "planner": False}
TYPES = {".html": "text/html", ".js": "javascript", ".css": "text/css", ".svg": "image/svg+xml"}
#: XML namespace names are identifiers that are never fetched; any other absolute URL would leave the host
NAMESPACES = {"http://www.w3.org/2000/svg"}
ROOT = Path(__file__).resolve().parents[2]

ASSET_FILES = sorted(p for p in ASSETS.rglob("*") if p.is_file())


@pytest.fixture(scope="module")
def web(shared_broker: EmbeddedBroker) -> httpx.Client:
    return httpx.Client(base_url=shared_broker.server.url, trust_env=False, timeout=10)


def test_the_landing_sends_a_browser_to_the_dashboard_which_allows_only_its_own_origin(web: httpx.Client) -> None:
    landing = web.get("/")
    assert landing.status_code == 307 and landing.headers["location"] == "/dashboard"
    page = web.get("/dashboard")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    policy = page.headers["content-security-policy"]
    assert "default-src 'self'" in policy and "script-src 'self'" in policy and "connect-src 'self'" in policy


@pytest.mark.parametrize("asset", ASSET_FILES, ids=lambda p: str(p.relative_to(ASSETS)))
def test_every_asset_is_served_with_its_content_type(web: httpx.Client, asset: Path) -> None:
    answer = web.get(f"{ASSETS_URL}/{asset.relative_to(ASSETS).as_posix()}")
    assert answer.status_code == 200
    assert TYPES[asset.suffix] in answer.headers["content-type"]
    assert answer.content == asset.read_bytes()


@pytest.mark.parametrize("asset", ASSET_FILES, ids=lambda p: str(p.relative_to(ASSETS)))
def test_no_asset_points_off_the_host(asset: Path) -> None:
    text = asset.read_text()
    assert set(re.findall(r"https?://[^\s\"'`)<>]+", text)) <= NAMESPACES
    assert not re.search(r"""(?:src|href)\s*=\s*["']//""", text)  # protocol-relative: another host too
    assert "@import" not in text and "fonts.g" not in text


def test_every_module_import_resolves_to_a_shipped_asset() -> None:
    for module in ASSETS.rglob("*.js"):
        for target in re.findall(r"""^import .* from ["'](.+?)["'];""", module.read_text(), re.M):
            assert target.startswith("."), (module, target)  # relative: served beside it, no bare specifier
            assert (module.parent / target).resolve().is_file(), (module, target)
    html = (ASSETS / "index.html").read_text()
    for url in re.findall(r"""(?:src|href)="(/dashboard/assets/[^"]+)\"""", html):
        assert (ASSETS / url.removeprefix(ASSETS_URL + "/")).is_file(), url


def test_package_data_ships_every_asset_in_a_non_editable_install() -> None:
    patterns = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]["api"]
    for asset in ASSET_FILES:
        relative = asset.relative_to(ASSETS.parent).as_posix()  # relative to the api package
        assert any(fnmatch.fnmatch(relative, pattern) and relative.count("/") == pattern.count("/")
                   for pattern in patterns), f"{relative} is not package data"
