"""Swagger UI on /docs in a real Chromium, under the page's own Content-Security-Policy
(no 'unsafe-inline'): it renders the app's operations, with no script error, no failed
request and nothing refused by the policy.

The suite runs without a network: the CDN's URLs are answered with the files of the same
release from npm (`swagger-ui-dist` in package.json, pinned to docs.SWAGGER_UI_VERSION):
byte for byte what jsDelivr serves, which their integrity hashes check, with the CORS
header jsDelivr sends. The policy is enforced all the same (it is checked before a request
is made, whoever answers it).
"""

import pytest

from backend.devstack.app_process import AppProcess
from backend.web import docs
from tests.support.browser import REQUIRE_BROWSER, missing_piece, watch_for_problems
from tests.test_api_docs import SWAGGER_UI_DIST, docs_app

try:
    from playwright.async_api import BrowserContext, Route, expect
except ImportError:
    if REQUIRE_BROWSER:
        raise
    pytest.skip("no playwright package", allow_module_level=True)

__all__ = ["docs_app"]  # the fixture, shared with tests/test_api_docs.py


@pytest.mark.timeout(120)
async def test_swagger_ui_renders_with_nothing_refused(
    docs_app: AppProcess, context: BrowserContext
) -> None:
    if not SWAGGER_UI_DIST.exists():
        missing_piece("no node_modules/swagger-ui-dist (`make install` runs npm ci)")

    async def from_npm(route: Route) -> None:
        name = route.request.url.rsplit("/", 1)[1]
        kind = "text/css" if name.endswith(".css") else "application/javascript"
        await route.fulfill(
            body=(SWAGGER_UI_DIST / name).read_bytes(),
            headers={"content-type": kind, "access-control-allow-origin": "*"},
        )

    page = await context.new_page()
    await page.route(f"{docs.CDN}/*", from_npm)
    problems = watch_for_problems(page)
    await page.goto(f"{docs_app.url}/docs")
    resend = page.locator(".opblock-summary-path", has_text="/api/verification/resend")
    await expect(resend).to_be_visible()
    await resend.click()
    await expect(page.get_by_text("Send a new verification email").first).to_be_visible()
    await expect(page.locator(".opblock-body")).to_contain_text("202")
    assert problems == []
