"""Browser tests: Debian's headless Chromium driven by Playwright (``executable_path``; Playwright's own browser
download is never used), against an embedded broker on a real loopback port.

Playwright rather than Selenium: it waits for elements and retries assertions on its own (``expect``), which keeps
tests that watch a page refresh itself short and free of sleeps, and it needs no chromedriver matching the browser.
"""

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, sync_playwright

from simulator import SimulatorConfig, SimulatorServer
from tests.harness import EmbeddedBroker, sim_catalogue, test_settings

SCREENSHOTS_ENV = "BROKER_SCREENSHOTS_DIR"  #: where the run saves a screenshot of each page


def chromium_executable() -> str:
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        message = "Debian's chromium is not installed (apt-get install -y chromium)"
        if os.environ.get("CI"):
            raise RuntimeError(message)
        pytest.skip(message)
    return path


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """One Chromium per module: Playwright's sync API runs an event loop on this thread while it is open, which
    later tests calling asyncio.run() must not meet."""
    executable = chromium_executable()
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=executable, headless=True)
        yield launched
        launched.close()


@pytest.fixture(scope="module")
def dash_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedBroker]:
    """An embedded broker whose provider answers in ~40 ms, two calls at a time: a batch of a few hundred lines
    runs for seconds, long enough to watch and to cancel. Webhooks may go to loopback (a receiver the test runs)."""
    with SimulatorServer(SimulatorConfig(latency_median_ms=40, latency_sigma=0.1)) as sim:
        catalogue = sim_catalogue(sim, max_concurrency=2)
        settings = test_settings(tmp_path_factory.mktemp("dash"), webhook_allow_hosts=["127.0.0.1"])
        broker = EmbeddedBroker(settings, catalogue).start()
        yield broker
        broker.stop()


@pytest.fixture(scope="session")
def screenshots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = Path(os.environ.get(SCREENSHOTS_ENV) or tmp_path_factory.mktemp("screenshots"))
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    """A fresh tab (its own sessionStorage); any script error on the page fails the test."""
    context = browser.new_context(viewport={"width": 1360, "height": 900})
    tab = context.new_page()
    errors: list[str] = []
    tab.on("pageerror", lambda error: errors.append(str(error)))
    # an API answering 401/403/404 is expected (a wrong key, a probe for admin rights); a CSP violation is not
    tab.on("console", lambda message: errors.append(message.text) if message.type == "error"
           and not message.text.startswith("Failed to load resource") else None)
    yield tab
    context.close()
    assert not errors, errors
