"""Browser fixtures, a pytest plugin (tests/conftest.py loads it): a headless Chromium, a
context per test, the app as a uvicorn process whose emails link back to itself.

Needs the `playwright` package and a Chromium at /usr/bin/chromium (Debian's `chromium`);
without either the browser tests skip, or fail when REQUIRE_BROWSER=1 (as in CI).
Screenshots go to $BROWSER_SCREENSHOTS, or to tmp_path.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from pydantic import SecretStr

from backend.devstack.app_process import AppProcess
from backend.devstack.chromium import CHROMIUM, launch_chromium
from backend.settings import Settings
from tests.support.ops import OPS_PASSWORD

if TYPE_CHECKING:
    from playwright.async_api import Browser, BrowserContext, ConsoleMessage, Error, Page, Response

REQUIRE_BROWSER = os.environ.get("REQUIRE_BROWSER") == "1"
HAVE_CHROMIUM = CHROMIUM.exists()


def missing_piece(what: str) -> None:
    """Skip the test for lack of `what`, or fail it under REQUIRE_BROWSER=1."""
    if REQUIRE_BROWSER:
        pytest.fail(f"{what}, and REQUIRE_BROWSER=1")
    pytest.skip(what)


@pytest.fixture(scope="module")
async def browser() -> AsyncIterator[Browser]:
    from playwright.async_api import async_playwright

    if not HAVE_CHROMIUM:
        missing_piece(f"no Chromium at {CHROMIUM} (apt-get install chromium)")
    async with async_playwright() as playwright:
        browser = await launch_chromium(playwright)
        yield browser
        await browser.close()


@pytest.fixture
async def context(browser: Browser) -> AsyncIterator[BrowserContext]:
    # The credentials answer only a challenge: the operator page's 401.
    context = await browser.new_context(
        viewport={"width": 1280, "height": 800},
        http_credentials={"username": "ops", "password": OPS_PASSWORD},
    )
    context.set_default_timeout(10_000)
    yield context
    await context.close()


@pytest.fixture
def shots(tmp_path: Path) -> Path:
    directory = Path(os.environ.get("BROWSER_SCREENSHOTS") or tmp_path)
    directory.mkdir(parents=True, exist_ok=True)
    return directory


@pytest.fixture
async def app(settings: Settings) -> AsyncIterator[AppProcess]:
    """The app as a uvicorn process whose emails link back to itself, with the operator
    page on (OPS_PASSWORD)."""
    app = AppProcess(settings)
    app.settings = settings.model_copy(
        update={"app_base_url": app.url, "ops_password": SecretStr(OPS_PASSWORD)}
    )
    try:
        await asyncio.to_thread(app.start)
        yield app
    finally:
        app.__exit__(None, None, None)


async def screenshot(page: Page, path: Path) -> None:
    await page.screenshot(path=path, full_page=True)


def watch_for_problems(page: Page) -> list[str]:
    """Script errors, failed requests and CSP refusals on this page, as they happen."""
    problems: list[str] = []

    def on_error(error: Error) -> None:
        problems.append(f"script error: {error.message}")

    def on_response(response: Response) -> None:
        if response.status >= 400:
            problems.append(f"HTTP {response.status} for {response.request.method} {response.url}")

    page.on("pageerror", on_error)
    page.on("response", on_response)
    page.on("console", lambda message: _note_csp(message, problems))
    return problems


def watch_for_csp(page: Page) -> list[str]:
    """What Chromium's console says the Content-Security-Policy refused on this page."""
    refused: list[str] = []
    page.on("console", lambda message: _note_csp(message, refused))
    return refused


def _note_csp(message: ConsoleMessage, into: list[str]) -> None:
    if "Content Security Policy" in message.text:
        into.append(f"CSP: {message.text}")
