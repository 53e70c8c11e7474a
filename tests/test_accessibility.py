"""Every page of the app and of the dev inbox in a real Chromium: no WCAG 2.1 AA violation
that axe-core finds, nothing refused by the Content-Security-Policy, and the stylesheet
(a static file now) really applied.

axe-core comes from npm (package.json, pinned by package-lock.json; `make install` runs
`npm ci`) and Playwright injects it into every document before the page's own scripts.
Without it these tests skip, or fail when REQUIRE_BROWSER=1 (as in CI).
"""

import asyncio
import re
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from backend.devstack import REPO_ROOT
from backend.devstack.app_process import AppProcess
from backend.devstack.inbox import DevInbox
from backend.devstack.sample_jobs import seed_jobs
from backend.settings import Settings
from tests.support.browser import REQUIRE_BROWSER, missing_piece, screenshot, watch_for_csp
from tests.support.helpers import (
    CONFIRM_SUBJECT,
    NOTICE_SUBJECT,
    PASSWORD,
    change_token,
    mails_about,
    reset_token,
)
from tests.support.mailhog import MailHog
from tests.support.pages import (
    APP_PAGES,
    BUSY_HEADING,
    CHANGED_EMAIL,
    INVALID_INPUT,
    NEW_PASSWORD,
    UNAVAILABLE_HEADING,
    expired_token,
    hasher_kept_busy,
    overload_settings,
    send_sample_mail,
    verify_link,
)

try:
    from playwright.async_api import BrowserContext, Page, expect
except ImportError:
    if REQUIRE_BROWSER:
        raise
    pytest.skip("no playwright package", allow_module_level=True)

AXE = REPO_ROOT / "node_modules" / "axe-core" / "axe.min.js"
HAVE_AXE = AXE.exists()
WCAG_21_AA = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]
# A style each stylesheet sets: seen computed, it proves the file loaded and applied.
APP_STYLE = ("body", "background-color", "rgb(244, 246, 250)")
INBOX_STYLE = ("header", "background-color", "rgb(45, 62, 80)")


@pytest.fixture
async def axe_context(context: BrowserContext) -> BrowserContext:
    if not HAVE_AXE:
        missing_piece(f"no axe-core at {AXE.relative_to(REPO_ROOT)} (`make install` runs npm ci)")
    # An init script runs in every document before its own scripts, outside the page's CSP
    # (which would refuse an injected <script>).
    await context.add_init_script(path=AXE)
    return context


class PageChecks:
    """Runs the checks on the page it watches, once per state of a walk, and keeps what
    each state got wrong."""

    def __init__(self, page: Page, shots: Path, style: tuple[str, str, str]) -> None:
        self.page = page
        self.shots = shots
        self.style = style
        self.refused = watch_for_csp(page)
        self.problems: dict[str, list[str]] = {}
        self.checked: list[str] = []

    async def check(self, name: str) -> None:
        await self.page.wait_for_load_state()
        found = await axe_violations(self.page)
        selector, prop, expected = self.style
        applied = await self.page.eval_on_selector(
            selector, "(el, prop) => getComputedStyle(el).getPropertyValue(prop)", prop
        )
        if applied != expected:
            found.append(f"stylesheet not applied: {selector} {prop} is {applied}")
        found += self.refused
        self.refused.clear()
        if found:
            self.problems[name] = found
        self.checked.append(name)
        slug = re.sub(r"\W+", "-", name)
        await screenshot(self.page, self.shots / f"checked-{slug}.png")


async def axe_violations(page: Page) -> list[str]:
    result = await page.evaluate(
        "tags => axe.run(document, {runOnly: {type: 'tag', values: tags}})", WCAG_21_AA
    )
    return [
        f"axe {v['id']} ({v['impact']}): {v['help']} at {[n['target'] for n in v['nodes']]}"
        for v in result["violations"]
    ]


async def fill_form(page: Page, username: str, email: str, password: str) -> None:
    await page.get_by_label("Username").fill(username)
    await page.get_by_label("Email").fill(email)
    await page.get_by_label("Password").fill(password)
    await page.get_by_role("button", name="Create account").click()
    await page.wait_for_load_state()


@pytest.mark.timeout(180)
async def test_every_page_of_the_app_passes_axe_and_its_csp(
    app: AppProcess,
    settings: Settings,
    mailhog: MailHog,
    engine: AsyncEngine,
    axe_context: BrowserContext,
    shots: Path,
) -> None:
    page = await axe_context.new_page()
    checks = PageChecks(page, shots, APP_STYLE)

    await page.goto(f"{app.url}/register")
    await checks.check("register form")
    await fill_form(page, INVALID_INPUT["username"], INVALID_INPUT["email"], "tiny-pw")
    await expect(page.locator(".field-error")).to_have_count(3)
    await checks.check("register form with errors")
    await fill_form(page, "ada", "ada@example.com", PASSWORD)
    await expect(page).to_have_url(f"{app.url}/register/done")
    await checks.check("registered")
    # Its script brings the welcome email's state up to date, in place, until final.
    status = page.locator("#mail-status")
    await expect(status).to_have_attribute("data-final", "true", timeout=30_000)
    await expect(status.locator(".state")).to_have_text("Sent")
    await checks.check("registered: sent")

    [mail] = await mailhog.wait_for(1)
    link = verify_link(app.url, mail.part("text/plain"))
    await page.goto(link)
    await checks.check("verify: asked")
    await page.get_by_role("button", name="Confirm my email address").click()
    await expect(page.get_by_role("heading", level=1)).to_have_text("Email confirmed")
    await checks.check("verify: confirmed")
    await page.goto(link)
    await checks.check("verify: already confirmed")
    await page.goto(f"{app.url}/verify?token={expired_token(settings)}")
    await checks.check("verify: expired")
    await page.goto(f"{app.url}/verify?token=not-a-token")
    await checks.check("verify: invalid")

    # The expired-link page leads to the resend form.
    await page.goto(f"{app.url}/verify?token={expired_token(settings)}")
    await page.get_by_role("link", name="Get a new confirmation link").click()
    await expect(page).to_have_url(f"{app.url}/verify/resend")
    await checks.check("resend form")
    await page.get_by_label("Email").fill(INVALID_INPUT["email"])
    await page.get_by_role("button", name="Send a new link").click()
    await expect(page.locator(".field-error")).to_have_count(1)
    await checks.check("resend form with errors")
    await page.get_by_label("Email").fill("ada@example.com")
    await page.get_by_role("button", name="Send a new link").click()
    await expect(page.get_by_role("heading", level=1)).to_have_text("Check your inbox")
    await checks.check("resend sent")

    # Signing in: a wrong password, then the right one, which leads to the account page.
    await page.goto(f"{app.url}/login")
    await checks.check("login form")
    await page.get_by_label("Username or email").fill("ada")
    await page.get_by_label("Password").fill("not the password")
    await page.get_by_role("button", name="Sign in").click()
    await expect(page.get_by_role("alert")).to_contain_text("Incorrect")
    await checks.check("login form: wrong login")
    await page.get_by_label("Password").fill(PASSWORD)
    await page.get_by_role("button", name="Sign in").click()
    await expect(page).to_have_url(f"{app.url}/account")
    await checks.check("account")

    # The password reset, from the login form's link to the login form again.
    await page.get_by_role("button", name="Sign out").click()
    await page.get_by_role("link", name="Forgot your password?").click()
    await expect(page).to_have_url(f"{app.url}/password/forgot")
    await checks.check("password forgot form")
    await page.get_by_label("Email").fill(INVALID_INPUT["email"])
    await page.get_by_role("button", name="Send me a link").click()
    await expect(page.locator(".field-error")).to_have_count(1)
    await checks.check("password forgot form with errors")
    await page.get_by_label("Email").fill("ada@example.com")
    await page.get_by_role("button", name="Send me a link").click()
    await expect(page.get_by_role("heading", level=1)).to_have_text("Check your inbox")
    await checks.check("password forgot sent")
    [reset_mail] = await mails_about(mailhog, "choose a new password")
    reset_link = f"{app.url}/password/reset?token={reset_token(reset_mail.part('text/plain'))}"
    await page.goto(reset_link)
    await checks.check("password reset: asked")
    await page.get_by_label("New password").fill("tiny")
    await page.get_by_role("button", name="Change my password").click()
    await expect(page.locator(".field-error")).to_have_count(1)
    await checks.check("password reset: weak password")
    await page.get_by_label("New password").fill(NEW_PASSWORD)
    await page.get_by_role("button", name="Change my password").click()
    await expect(page).to_have_url(f"{app.url}/login?reset=done")
    await checks.check("login form: password changed")
    await page.goto(reset_link)
    await checks.check("password reset: used")
    await page.goto(f"{app.url}/password/reset?token=not-a-token")
    await checks.check("password reset: invalid")

    # Signed in again: the address changed from the account page, confirmed, then undone
    # from the old address (which signs everything out). After the reset: the change's
    # notice uses the last of the address's mail budget, which the reset email needs.
    await page.goto(f"{app.url}/login")
    await page.get_by_label("Username or email").fill("ada")
    await page.get_by_label("Password").fill(NEW_PASSWORD)
    await page.get_by_role("button", name="Sign in").click()
    await expect(page).to_have_url(f"{app.url}/account")
    await page.get_by_label("New address").fill(CHANGED_EMAIL)
    await page.get_by_label("Current password").fill("not the password")
    await page.get_by_role("button", name="Send a confirmation link").click()
    await expect(page.locator(".field-error")).to_have_count(1)
    await checks.check("account: address change refused")
    await page.get_by_label("Current password").fill(NEW_PASSWORD)
    await page.get_by_role("button", name="Send a confirmation link").click()
    await expect(page.get_by_role("heading", level=1)).to_have_text("Check your new inbox")
    await checks.check("address change sent")
    [confirm_mail] = await mails_about(mailhog, CONFIRM_SUBJECT)
    [notice_mail] = await mails_about(mailhog, NOTICE_SUBJECT)
    for purpose, mail, button in (
        ("confirm", confirm_mail, "Use this address"),
        ("revert", notice_mail, "Undo the change"),
    ):
        link = f"{app.url}/email/{purpose}?token={change_token(mail.part('text/plain'), purpose)}"
        await page.goto(link)
        await checks.check(f"email {purpose}: asked")
        await page.get_by_role("button", name=button).click()
        await expect(page.get_by_role("status")).to_be_visible()
        await checks.check(f"email {purpose}: done")
        await page.goto(link)
        await checks.check(f"email {purpose}: used")

    # The operator page, with jobs in every state; driven by its forms (it has no script).
    failed = (await seed_jobs(engine))["failed"][0]
    await page.goto(f"{app.url}/ops/jobs")
    await expect(page.get_by_role("heading", level=1)).to_have_text("Background jobs")
    await checks.check("ops jobs")
    await page.get_by_role("button", name=f"Retry job {failed}", exact=True).click()
    await expect(page.get_by_role("status")).to_have_text(f"Job {failed} retried.")
    await checks.check("ops jobs: retried")
    await page.get_by_label("State", exact=True).select_option("failed")
    await page.get_by_role("button", name="Show").click()
    await expect(page.get_by_role("button", name=re.compile(r"^Retry all \d+$"))).to_be_visible()
    await checks.check("ops jobs: failed")

    with overload_settings(settings) as broken:
        overloaded = AppProcess(broken)  # conftest stops it after the test
        await asyncio.to_thread(overloaded.start, ready_path="/livez")
        await page.goto(f"{overloaded.url}/register")
        await fill_form(page, "ada", "ada@example.com", PASSWORD)
        await expect(page.get_by_role("heading", level=1)).to_contain_text(UNAVAILABLE_HEADING)
        await checks.check("unavailable")
        async with hasher_kept_busy(overloaded.url):
            deadline = time.monotonic() + 15
            while "busy" not in checks.checked and time.monotonic() < deadline:
                await page.goto(f"{overloaded.url}/register")
                await fill_form(page, "ada", "ada@example.com", PASSWORD)
                if BUSY_HEADING in await page.get_by_role("heading", level=1).inner_text():
                    await checks.check("busy")

    assert checks.problems == {}
    assert sorted(checks.checked) == sorted(APP_PAGES), "every page in APP_PAGES, and no other"


@pytest.fixture(scope="module")
def inbox() -> Iterator[DevInbox]:
    """An inbox of our own, whatever TEST_MAILHOG_URL says: these are its pages."""
    with DevInbox(smtp_port=0, http_port=0) as running:
        yield running


async def test_every_view_of_the_inbox_passes_axe_and_its_csp(
    inbox: DevInbox, axe_context: BrowserContext, shots: Path
) -> None:
    page = await axe_context.new_page()
    checks = PageChecks(page, shots, INBOX_STYLE)
    await page.goto(f"{inbox.api_url}/")
    await expect(page.get_by_text("No messages yet")).to_be_visible()
    await checks.check("inbox: empty")

    await asyncio.to_thread(send_sample_mail, inbox.smtp_port)
    row = page.locator("#rows tr")
    await expect(row).to_have_count(1, timeout=10_000)  # the list polls every 3 s
    await checks.check("inbox: list")

    await row.click()
    mail = page.frame_locator("#html-frame")
    # Framed (frame-ancestors 'self'), and styled by the email's own inline styles.
    await expect(mail.get_by_role("heading", level=1)).to_have_text("Hi ada,")
    await expect(mail.get_by_role("heading", level=1)).to_have_css("font-size", "22px")
    await checks.check("inbox: message")

    assert checks.problems == {}


async def test_a_refused_inline_style_is_seen(inbox: DevInbox, axe_context: BrowserContext) -> None:
    """The CSP watch above is not blind: an inline <style> is refused, and reported."""
    page = await axe_context.new_page()
    refused = watch_for_csp(page)
    await page.goto(f"{inbox.api_url}/")
    await page.evaluate(
        "() => document.head.append(Object.assign(document.createElement('style'),"
        " {textContent: 'body { color: red }'}))"
    )
    for _ in range(50):
        if refused:
            break
        await asyncio.sleep(0.1)
    assert refused and "style-src 'self'" in refused[0]
    assert await page.evaluate("getComputedStyle(document.body).color") != "rgb(255, 0, 0)"
