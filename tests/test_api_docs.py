"""/docs under a Content-Security-Policy without 'unsafe-inline', from a real uvicorn: its
headers, no inline script, and Subresource Integrity hashes that match the pinned Swagger
UI release (tests/test_api_docs_browser.py renders it in Chromium)."""

import base64
import hashlib
import json
import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from backend.devstack import REPO_ROOT
from backend.devstack.app_process import AppProcess
from backend.settings import Settings
from backend.web import docs
from tests.support.browser import missing_piece

SWAGGER_UI_DIST = REPO_ROOT / "node_modules" / "swagger-ui-dist"


@pytest.fixture
def docs_app(settings: Settings) -> Iterator[AppProcess]:
    """The app with its docs on (in the test environment they are off, as in production)."""
    with AppProcess(settings.model_copy(update={"api_docs_enabled": True})) as app:
        yield app


def policy(response: httpx.Response) -> dict[str, str]:
    header = response.headers.get("content-security-policy", "")
    parts = (part.strip().split(None, 1) for part in header.split(";") if part.strip())
    return {p[0]: p[1] if len(p) > 1 else "" for p in parts}


def sri(path: Path) -> str:
    return "sha384-" + base64.b64encode(hashlib.sha384(path.read_bytes()).digest()).decode()


async def test_the_docs_page_has_a_policy_without_unsafe_inline(docs_app: AppProcess) -> None:
    async with httpx.AsyncClient(base_url=docs_app.url, timeout=10) as http:
        page = await http.get("/docs")
        script = await http.get("/static/api-docs.js")
        redoc = await http.get("/redoc")
        oauth_redirect = await http.get("/docs/oauth2-redirect")
        spec = await http.get("/openapi.json")

    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    csp = policy(page)
    assert "'unsafe-inline'" not in page.headers["content-security-policy"]
    assert "'unsafe-eval'" not in page.headers["content-security-policy"]
    assert csp["default-src"] == "'none'"
    assert csp["script-src"] == f"'self' {docs.CDN}/"
    assert csp["style-src"] == f"{docs.CDN}/"
    assert csp["connect-src"] == "'self'"
    assert (csp["frame-ancestors"], csp["base-uri"], csp["object-src"]) == ("'none'",) * 3
    assert page.headers["x-content-type-options"] == "nosniff"
    assert page.headers["referrer-policy"] == "no-referrer"
    # Every script is a file, every file from the CDN pinned by its hash.
    assert not re.search(r"<script(?![^>]*\ssrc=)", page.text)
    assert not re.search(r"<style|\sstyle=|\son[a-z]+=", page.text)
    assert f'integrity="{docs.SWAGGER_UI_JS}"' in page.text
    assert f'integrity="{docs.SWAGGER_UI_CSS}"' in page.text
    assert 'data-openapi-url="/openapi.json"' in page.text
    assert script.status_code == 200 and "javascript" in script.headers["content-type"]
    assert "SwaggerUIBundle(" in script.text
    # ReDoc injects <style> elements, which this policy would refuse: not served at all.
    assert redoc.status_code == 404 and oauth_redirect.status_code == 404
    assert spec.status_code == 200 and "/api/verification/resend" in spec.json()["paths"]


def test_the_integrity_hashes_are_those_of_the_pinned_release() -> None:
    if not SWAGGER_UI_DIST.exists():
        missing_piece("no node_modules/swagger-ui-dist (`make install` runs npm ci)")
    package = json.loads((SWAGGER_UI_DIST / "package.json").read_text())
    assert package["version"] == docs.SWAGGER_UI_VERSION, "package.json and docs.py disagree"
    assert sri(SWAGGER_UI_DIST / "swagger-ui-bundle.js") == docs.SWAGGER_UI_JS
    assert sri(SWAGGER_UI_DIST / "swagger-ui.css") == docs.SWAGGER_UI_CSS
