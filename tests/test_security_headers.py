"""Security headers on every HTML page of the app and of the dev inbox, from real processes:
a CSP without 'unsafe-inline', nosniff, no Referer, no framing (but the inbox's own message
frame), no-store where a token is, HSTS only behind an https APP_BASE_URL."""

import asyncio
import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from backend.devstack import REPO_ROOT
from backend.devstack.app_process import AppProcess
from backend.devstack.inbox import DevInbox
from backend.settings import Settings
from tests.support.mailhog import MailHog
from tests.support.pages import (
    APP_PAGES,
    BUSY_HEADING,
    UNAVAILABLE_HEADING,
    fetch_app_pages,
    fetch_overload_pages,
    heading,
    overload_settings,
    send_sample_mail,
)

HSTS = "max-age=31536000"


def csp(response: httpx.Response) -> dict[str, str]:
    """The Content-Security-Policy as {directive: sources}."""
    policy = response.headers.get("content-security-policy", "")
    directives = (part.strip().split(None, 1) for part in policy.split(";") if part.strip())
    return {d[0]: d[1] if len(d) > 1 else "" for d in directives}


def html_page_problems(
    response: httpx.Response,
    *,
    no_store: bool,
    hsts: bool,
    frame_ancestors: str = "'none'",
    app_page: bool = True,
) -> list[str]:
    policy = csp(response)
    app_only = {
        "X-Frame-Options: DENY": response.headers.get("x-frame-options") == "DENY",
        "a Permissions-Policy": "camera=()" in response.headers.get("permissions-policy", ""),
        "no Server header": "server" not in response.headers,
    }
    expected = {
        **(app_only if app_page else {}),
        "content-type starts text/html": response.headers.get("content-type", "").startswith(
            "text/html"
        ),
        "a CSP": bool(policy),
        "no 'unsafe-inline' in the CSP": "'unsafe-inline'" not in str(policy),
        "script-src 'self'": policy.get("script-src") == "'self'",
        "style-src 'self'": policy.get("style-src") == "'self'",
        "object-src 'none'": policy.get("object-src") == "'none'",
        "base-uri 'none'": policy.get("base-uri") == "'none'",
        f"frame-ancestors {frame_ancestors}": policy.get("frame-ancestors") == frame_ancestors,
        "nosniff": response.headers.get("x-content-type-options") == "nosniff",
        "Referrer-Policy: no-referrer": response.headers.get("referrer-policy") == "no-referrer",
        f"no-store is {no_store}": (response.headers.get("cache-control") == "no-store")
        == no_store,
        f"HSTS is {hsts}": (response.headers.get("strict-transport-security") == HSTS) == hsts,
    }
    return [f"expected {what}" for what, holds in expected.items() if not holds]


@pytest.mark.timeout(120)
async def test_every_page_of_the_app_has_the_headers(
    app: AppProcess, settings: Settings, mailhog: MailHog
) -> None:
    pages = await fetch_app_pages(app.url, mailhog, app.settings)
    with overload_settings(settings) as broken:
        overloaded = AppProcess(broken)  # conftest stops it after the test
        await asyncio.to_thread(overloaded.start, ready_path="/livez")
        pages |= await fetch_overload_pages(overloaded.url)

    assert set(pages) == set(APP_PAGES), "every page in APP_PAGES reached, and no other"
    assert heading(pages["busy"]).startswith(BUSY_HEADING)
    assert heading(pages["unavailable"]).startswith(UNAVAILABLE_HEADING)
    problems = {}
    for name, response in pages.items():
        page = APP_PAGES[name]
        found = html_page_problems(response, no_store=page.no_store, hsts=False)
        if response.status_code != page.status:
            found.append(f"status {response.status_code}, not {page.status}")
        if found:
            problems[name] = found
    assert problems == {}


async def test_hsts_when_app_base_url_is_https(settings: Settings) -> None:
    https = settings.model_copy(update={"app_base_url": "https://register.example"})
    with AppProcess(https) as app:
        async with httpx.AsyncClient(base_url=app.url, timeout=10) as http:
            form = await http.get("/register")
            health = await http.get("/healthz")
    assert html_page_problems(form, no_store=True, hsts=True) == []
    # HSTS is for the host, so every response may carry it.
    assert health.headers["strict-transport-security"] == HSTS


async def test_static_files_and_json_keep_their_own_headers(app: AppProcess) -> None:
    async with httpx.AsyncClient(base_url=app.url, timeout=10) as http:
        css = await http.get("/static/app.css")
        health = await http.get("/healthz")
        redirect = await http.get("/")
    assert css.status_code == 200
    assert css.headers["content-type"].startswith("text/css")
    assert css.headers["x-content-type-options"] == "nosniff"
    assert "body {" in css.text
    assert health.headers["content-type"] == "application/json"
    assert health.headers["x-content-type-options"] == "nosniff"
    # No route of these asked for no-store, and they are not pages: no CSP.
    for response in (css, health, redirect):
        assert "cache-control" not in response.headers
        assert "content-security-policy" not in response.headers
        assert "strict-transport-security" not in response.headers


@pytest.fixture(scope="module")
def inbox() -> Iterator[DevInbox]:
    """An inbox of our own, whatever TEST_MAILHOG_URL says: these are its pages."""
    with DevInbox(smtp_port=0, http_port=0) as running:
        yield running


def test_every_page_of_the_inbox_has_the_headers(inbox: DevInbox) -> None:
    send_sample_mail(inbox.smtp_port)
    with httpx.Client(base_url=inbox.api_url, timeout=10) as http:
        [message] = http.get("/api/v2/messages").json()["items"]
        ui = http.get("/")
        body = http.get(f"/api/dev/messages/{message['ID']}/html")
        assets = [http.get("/static/inbox.css"), http.get("/static/inbox.js")]
        api = http.get("/api/v2/messages")

    assert html_page_problems(ui, no_store=False, hsts=False, app_page=False) == []
    assert 'src="static/inbox.js"' in ui.text

    # The message body: the one response that allows inline styles, framed by the UI only.
    assert body.status_code == 200
    policy = csp(body)
    assert policy["default-src"] == "'none'"
    assert policy["style-src"] == "'unsafe-inline'"
    assert "script-src" not in policy  # so default-src 'none': no script at all
    assert policy["frame-ancestors"] == "'self'"
    assert policy["sandbox"] == "allow-popups allow-popups-to-escape-sandbox"
    assert body.headers["x-content-type-options"] == "nosniff"
    assert body.headers["referrer-policy"] == "no-referrer"
    assert '<head><base target="_blank"><meta charset="utf-8">' in body.text

    for asset in assets:
        assert asset.status_code == 200
        assert asset.headers["x-content-type-options"] == "nosniff"
    assert assets[0].headers["content-type"].startswith("text/css")
    assert "javascript" in assets[1].headers["content-type"]
    # The MailHog API is JSON as before: no page policy on it.
    assert api.headers["content-type"] == "application/json"
    assert "content-security-policy" not in api.headers


PAGE_SOURCES = [
    *sorted((REPO_ROOT / "templates" / "pages").glob("*.html")),
    REPO_ROOT / "backend" / "devstack" / "inbox_ui.html",
]


@pytest.mark.parametrize("source", PAGE_SOURCES, ids=lambda path: path.name)
def test_pages_carry_no_inline_style_or_script(source: Path) -> None:
    # The CSP would refuse them; this finds one on a branch no test renders.
    html = source.read_text(encoding="utf-8")
    assert not re.search(r"<style|\sstyle=|\son[a-z]+=", html, re.IGNORECASE)
    assert not re.search(r"<script(?![^>]*\ssrc=)", html, re.IGNORECASE)


def test_every_page_template_is_listed() -> None:
    templates = {p.name for p in (REPO_ROOT / "templates" / "pages").glob("*.html")}
    listed = {page.template for page in APP_PAGES.values()}
    assert templates - {"base.html"} == listed, (
        "a page template without an entry in tests/support/pages.py APP_PAGES "
        "(its headers and accessibility go unchecked)"
    )
