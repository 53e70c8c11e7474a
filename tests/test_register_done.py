"""/register/done after a form registration: that browser's welcome email, in words,
through a real uvicorn and the inbox. Followed while the relay is down (the page keeps
its updating script) until sent (no script); refused by the relay (Jim's 550), with what
helps; nothing for another browser or a forged cookie; the cookie's flags."""

import re

import httpx
from itsdangerous import URLSafeTimedSerializer
from sqlalchemy.ext.asyncio import AsyncEngine

from backend.devstack.app_process import AppProcess
from backend.devstack.smtp_proxy import SmtpProxy
from backend.settings import Settings
from backend.web.registered_cookie import RegisteredCookie
from tests.support.durability import through_proxy, wait_until
from tests.support.helpers import PASSWORD, csrf_token, rows
from tests.support.jim import JimAPI
from tests.support.mailhog import MailHog
from tests.support.settings import TEST_SECRET
from tests.test_relay_faults import fault

SCRIPT = '<script src="/static/mail-status.js" defer></script>'


async def register_by_form(http: httpx.AsyncClient, username: str) -> httpx.Response:
    token = csrf_token((await http.get("/register")).text)
    fields = {"username": username, "email": f"{username}@example.com", "password": PASSWORD}
    answer = await http.post("/register", data={"csrf_token": token, **fields})
    assert answer.status_code == 303 and answer.headers["location"] == "/register/done"
    return answer


def state(html: str) -> str:
    match = re.search(r'<span class="state state-[a-z]+">([^<]*)</span>', html)
    return match.group(1) if match else ""


def signed(value: object, secret: str = TEST_SECRET) -> str:
    return URLSafeTimedSerializer(secret, salt="registered").dumps(value)


def made(job_id: int, secret: str = TEST_SECRET) -> str:
    """A cookie as the app makes them, naming `job_id`, for mallory."""
    cookie = RegisteredCookie(secret, secure=False)
    return cookie.value(username="mallory", email="mallory@example.com", email_job_id=job_id)


async def test_the_page_follows_the_welcome_email_until_it_is_sent(
    settings: Settings, proxy: SmtpProxy, engine: AsyncEngine, mailhog: MailHog
) -> None:
    proxy.down()
    with AppProcess(through_proxy(settings, proxy)) as app:
        async with httpx.AsyncClient(base_url=app.url, timeout=30) as http:
            answer = await register_by_form(http, "grace")
            waiting = await http.get("/register/done")
            await wait_until(
                engine,
                "SELECT id FROM jobs WHERE kind = 'email.welcome' AND last_error IS NOT NULL",
                bool,
            )
            retrying = await http.get("/register/done")
            proxy.up()
            await mailhog.wait_for(1)
            await wait_until(
                engine,
                "SELECT id FROM jobs WHERE kind = 'email.welcome' AND status = 'succeeded'",
                bool,
            )
            sent = await http.get("/register/done")
            [welcome] = await rows(engine, "SELECT id FROM jobs WHERE kind = 'email.welcome'")
            job_id = welcome["id"]
        async with httpx.AsyncClient(base_url=app.url, timeout=30) as stranger:
            other_browser = await stranger.get("/register/done")

    cookie = answer.headers["set-cookie"]
    assert cookie.startswith("registered=")
    for flag in ("HttpOnly", "Max-Age=86400", "Path=/", "SameSite=lax"):
        assert flag in cookie
    assert "Secure" not in cookie  # APP_BASE_URL is http here
    # The job id is in it masked: readable, it names no job.
    value = cookie.split(";")[0].removeprefix("registered=").strip('"')
    readable = URLSafeTimedSerializer(TEST_SECRET, salt="registered").loads(value)
    assert set(readable) == {"username", "email", "nonce", "job"}
    assert int(readable["job"], 16) != job_id

    assert state(waiting.text) in ("Waiting to be sent", "Being sent now", "Not sent yet, retrying")
    assert state(retrying.text) == "Not sent yet, retrying"
    assert "we keep trying" in retrying.text
    for page in (waiting, retrying):
        assert 'data-final="false"' in page.text and SCRIPT in page.text
        assert 'href="/register/done">Check again' in page.text
    assert state(sent.text) == "Sent"
    assert 'data-final="true"' in sent.text and "<script" not in sent.text
    assert "check your spam folder" in sent.text
    assert "Welcome aboard, grace" in sent.text and "grace@example.com" in sent.text

    assert other_browser.status_code == 200
    assert "grace" not in other_browser.text and 'id="mail-status"' not in other_browser.text
    assert "Your account is created." in other_browser.text


async def test_a_refused_address_is_said_plainly_with_what_helps(
    settings: Settings, engine: AsyncEngine, jim: JimAPI
) -> None:
    await jim.faults(fault("rcpt", "550 5.1.1 No such user"))
    try:
        with AppProcess(settings) as app:
            async with httpx.AsyncClient(base_url=app.url, timeout=30) as http:
                await register_by_form(http, "grace")
                await wait_until(
                    engine,
                    "SELECT id FROM jobs WHERE kind = 'email.welcome' AND status = 'failed'",
                    bool,
                )
                page = await http.get("/register/done")
    finally:
        await jim.off()

    assert page.status_code == 200
    assert state(page.text) == "Not sent: refused"
    assert "Check the address you typed: <strong>grace@example.com</strong>" in page.text
    assert 'href="/verify/resend"' in page.text and 'href="/register"' in page.text
    assert 'data-final="true"' in page.text and "<script" not in page.text


async def test_a_forged_or_foreign_cookie_gets_the_generic_page(
    settings: Settings, engine: AsyncEngine, mailhog: MailHog
) -> None:
    with AppProcess(settings) as app:
        async with httpx.AsyncClient(base_url=app.url, timeout=30) as http:
            await register_by_form(http, "grace")
            await mailhog.wait_for(1)
            [audit_job] = await rows(engine, "SELECT id FROM jobs WHERE kind = 'audit.write'")
            [welcome] = await rows(engine, "SELECT id FROM jobs WHERE kind = 'email.welcome'")
            who = {"username": "mallory", "email": "mallory@example.com", "nonce": "n"}
            cookies = {
                "garbage": "not-signed",
                "another key": made(welcome["id"], secret="x" * 40),
                "not an email job": made(audit_job["id"]),
                "no job": signed({**who}),
                "job not hex": signed({**who, "job": "zz"}),
                "job past bigint": signed({**who, "job": "f" * 40}),
                "not a dict": signed(["mallory"]),
            }
            pages = {}
            for name, value in cookies.items():
                async with httpx.AsyncClient(
                    base_url=app.url, timeout=30, cookies={"registered": value}
                ) as browser:
                    pages[name] = await browser.get("/register/done")

    for name, page in pages.items():
        assert page.status_code == 200, name
        assert 'id="mail-status"' not in page.text, name
        assert "Your account is created." in page.text, name
    # Signed with this app's key but naming no email: the person's words, no state.
    assert "Welcome aboard, mallory" in pages["not an email job"].text
