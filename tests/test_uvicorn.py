"""The app as users run it: a real uvicorn process over real HTTP."""

import asyncio

import httpx
from sqlalchemy.ext.asyncio import AsyncEngine

from backend.devstack.app_process import AppProcess
from backend.settings import Settings
from tests.support.helpers import confirm, csrf_token, rows, user_json, verify_link
from tests.support.mailhog import MailHog


async def test_register_through_the_form_and_confirm_from_the_inbox(
    settings: Settings, mailhog: MailHog, engine: AsyncEngine
) -> None:
    with AppProcess(settings) as app:
        settings_url = settings.app_base_url
        async with httpx.AsyncClient(base_url=app.url, timeout=30) as browser:
            form = await browser.get("/register")
            assert form.status_code == 200
            response = await browser.post(
                "/register", data={"csrf_token": csrf_token(form.text), **user_json("linus")}
            )
            assert response.status_code == 303
            assert (await browser.get(response.headers["location"])).status_code == 200

            [mail] = await mailhog.wait_for(1)
            link = verify_link(mail.part("text/html"))
            confirmed = await confirm(browser, link.removeprefix(settings_url))

        assert confirmed.status_code == 200 and "Email confirmed" in confirmed.text
        for _ in range(50):  # the audit row is written after the response
            actions = {r["action"] for r in await rows(engine, "SELECT action FROM audit_log")}
            if "user.email_verified" in actions:
                break
            await asyncio.sleep(0.1)
        assert actions == {"user.registered", "email.sent", "user.email_verified"}
        # Uvicorn re-raises the SIGTERM after a clean shutdown, so the exit status is -15.
        assert app.terminate() in (0, -15)
        assert "Application shutdown complete" in app.log()
