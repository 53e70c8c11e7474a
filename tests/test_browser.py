"""What a person does, in a real headless Chromium: register, read the mail, click the link.

The fixtures (browser, context, app, shots) come from tests/support/browser.py: these tests
skip without Playwright or Chromium, or fail when REQUIRE_BROWSER=1 (as in CI).
"""

import os
import re
from pathlib import Path

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from backend.devstack.app_process import AppProcess
from tests.support.browser import REQUIRE_BROWSER, screenshot, watch_for_problems
from tests.support.helpers import PASSWORD, rows
from tests.support.mailhog import MailEndpoints

try:
    from playwright.async_api import BrowserContext, expect
except ImportError:
    if REQUIRE_BROWSER:
        raise
    pytest.skip("no playwright package", allow_module_level=True)


async def test_register_then_confirm_from_the_inbox(
    app: AppProcess,
    mail_endpoints: MailEndpoints,
    context: BrowserContext,
    engine: AsyncEngine,
    shots: Path,
) -> None:
    if os.environ.get("TEST_MAILHOG_URL"):
        pytest.skip("clicks through the built-in inbox's web UI, not an outside MailHog's")

    page = await context.new_page()
    await page.goto(f"{app.url}/register")
    await expect(page.get_by_role("heading", level=1)).to_have_text("Create your account")
    await page.get_by_label("Username").fill("ada")
    await page.get_by_label("Email").fill("ada@example.com")
    await page.get_by_label("Password").fill(PASSWORD)
    await screenshot(page, shots / "1-form.png")
    await page.get_by_role("button", name="Create account").click()

    await expect(page).to_have_url(f"{app.url}/register/done")
    await expect(page.get_by_role("heading", level=1)).to_have_text("Check your inbox")
    await expect(page.get_by_role("status")).to_have_text(
        "Welcome aboard, ada! Your account is created."
    )
    await expect(page.locator("main")).to_contain_text("ada@example.com")
    await screenshot(page, shots / "2-check-your-inbox.png")

    inbox_url = f"{mail_endpoints.api_url}/"
    inbox = await context.new_page()
    problems = watch_for_problems(inbox)
    await inbox.goto(inbox_url)
    # The list polls the API, so the message shows up even if it arrives after the load.
    row = inbox.locator("#rows tr").filter(has_text="ada@example.com")
    await expect(row).to_have_count(1, timeout=15_000)
    await expect(row).to_contain_text("Welcome, ada! Please confirm your email")
    await row.click()

    await expect(row).to_have_class(re.compile(r"\bselected\b"))
    await expect(inbox.locator("#fields")).to_contain_text("ada@example.com")
    await inbox.get_by_role("button", name="HTML", exact=True).click()
    await expect(inbox.get_by_role("button", name="HTML", exact=True)).to_have_class(
        re.compile(r"\bactive\b")
    )
    mail = inbox.get_by_title("HTML body").content_frame
    try:
        await expect(mail.get_by_role("heading", level=1)).to_have_text("Hi ada,")
    except AssertionError as exc:
        await screenshot(inbox, shots / "3-inbox-html.png")  # what the user is left with
        raise AssertionError(f"the email's HTML never showed; the inbox saw {problems}") from exc
    confirm = mail.get_by_role("link", name="Confirm my email")
    await expect(confirm).to_have_attribute(
        "href", re.compile(rf"^{re.escape(app.url)}/verify\?token=[\w.-]+$")
    )
    await screenshot(inbox, shots / "3-inbox-html.png")

    # The UI gives the mail <base target="_blank">: the link opens a new tab.
    async with context.expect_page() as new_tab:
        await confirm.click()
    confirmed = await new_tab.value
    await confirmed.wait_for_load_state()
    await expect(confirmed).to_have_url(re.compile(rf"^{re.escape(app.url)}/verify\?token="))
    # Opening the link confirms nothing (mail scanners open links too): its button does.
    await expect(confirmed.get_by_role("heading", level=1)).to_have_text(
        "Confirm your email address"
    )
    await confirmed.get_by_role("button", name="Confirm my email address").click()
    await expect(confirmed).to_have_url(f"{app.url}/verify")
    await expect(confirmed.get_by_role("heading", level=1)).to_have_text("Email confirmed")
    await expect(confirmed.get_by_role("status")).to_have_text(
        "Thanks, ada: your email address is confirmed."
    )
    await screenshot(confirmed, shots / "4-email-confirmed.png")
    # The confirmed page leads on: to the site's home page.
    home = confirmed.get_by_role("link", name="Go to the home page")
    await expect(home).to_have_attribute("href", "/")
    await home.click()
    await expect(confirmed).to_have_url(f"{app.url}/register")

    assert inbox.url == inbox_url  # the inbox itself stayed put
    assert problems == []
    [user] = await rows(engine, "SELECT username, email_verified_at FROM users")
    assert user["username"] == "ada" and user["email_verified_at"] is not None


async def test_invalid_input_shows_field_errors_and_keeps_the_username(
    app: AppProcess, context: BrowserContext, engine: AsyncEngine, shots: Path
) -> None:
    page = await context.new_page()
    await page.goto(f"{app.url}/register")
    username = page.get_by_label("Username")
    email = page.get_by_label("Email")
    password = page.get_by_label("Password")
    await username.fill("g!")
    await email.fill("grace-at-example")
    await password.fill("tiny-pw")

    async with page.expect_response(
        lambda r: r.url == f"{app.url}/register" and r.request.method == "POST"
    ) as submitted:
        await page.get_by_role("button", name="Create account").click()
    assert (await submitted.value).status == 422
    await page.wait_for_load_state()

    await expect(page.get_by_role("alert")).to_have_text("Please correct the highlighted fields.")
    # Each message starts the field's accessible description (the hint follows), so screen
    # readers announce it too.
    for field, message in [
        (username, "Must be at least 3 characters"),
        (email, "Enter a valid email address, like name@example.com"),
        (password, "Must be at least 8 characters"),
    ]:
        await expect(field).to_have_attribute("aria-invalid", "true")
        await expect(field).to_have_accessible_description(re.compile(f"^{re.escape(message)}"))
    await expect(page.locator(".field-error")).to_have_text(
        [
            "Must be at least 3 characters",
            "Enter a valid email address, like name@example.com",
            "Must be at least 8 characters",
        ]
    )
    await expect(username).to_have_value("g!")
    await expect(email).to_have_value("grace-at-example")
    await expect(password).to_have_value("")
    await screenshot(page, shots / "5-form-errors.png")
    assert await rows(engine, "SELECT id FROM users") == []


async def test_inbox_switch_turns_the_chaos_monkey_on_and_off(
    mail_endpoints: MailEndpoints, context: BrowserContext, shots: Path
) -> None:
    if os.environ.get("TEST_MAILHOG_URL"):
        pytest.skip("clicks through the built-in inbox's web UI, not an outside MailHog's")

    async with httpx.AsyncClient(base_url=mail_endpoints.api_url, timeout=10) as http:
        await http.delete("/api/v2/jim")
        page = await context.new_page()
        problems = watch_for_problems(page)
        try:
            await page.goto(f"{mail_endpoints.api_url}/")
            switch = page.get_by_role("switch", name=re.compile("Chaos monkey"))
            state = page.locator("#jim-state")
            await expect(state).to_have_text("off")
            await expect(switch).not_to_be_checked()

            await switch.click()
            await expect(state).to_have_text("on")
            await expect(switch).to_be_checked()
            settings = (await http.get("/api/v2/jim")).json()
            assert settings["AcceptChance"] == 0.99  # MailHog's defaults
            assert settings["RejectSenderChance"] == 0.05
            await screenshot(page, shots / "6-inbox-chaos-monkey-on.png")

            # Changed through the API, the switch follows within a poll.
            await http.put("/api/v2/jim", json={"Faults": [{"Stage": "mail", "Reply": "451 x"}]})
            await expect(state).to_have_text("on, 1 fault rule", timeout=5_000)

            await switch.click()
            await expect(state).to_have_text("off")
            await expect(switch).not_to_be_checked()
            assert (await http.get("/api/v2/jim")).status_code == 404
        finally:
            await http.delete("/api/v2/jim")
        assert problems == []
