"""Every HTML page of the app, and how to reach each one over plain HTTP.

The header checks (tests/test_security_headers.py) and the accessibility checks in the
browser (tests/test_accessibility.py) both walk APP_PAGES, and each fails when its walk
misses a name here, or when a template in templates/pages/ has no entry: a new page is
added here once, with whether it must not be cached, then reached in both walks.
"""

import asyncio
import contextlib
import re
import smtplib
import socket
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from email.message import EmailMessage

import httpx
from itsdangerous import TimestampSigner, URLSafeTimedSerializer

from backend.settings import Settings
from backend.web.csrf import COOKIE_NAME, Csrf
from tests.support.helpers import (
    CONFIRM_SUBJECT,
    NOTICE_SUBJECT,
    PASSWORD,
    change_token,
    csrf_token,
    hidden_field,
    mails_about,
    reset_token,
    user_json,
)
from tests.support.mailhog import MailHog
from tests.support.ops import OPS_AUTH


@dataclass(frozen=True)
class HtmlPage:
    template: str
    status: int
    # Carries a token (CSRF field, token in the URL) or personal data: Cache-Control: no-store.
    no_store: bool


APP_PAGES: dict[str, HtmlPage] = {
    "register form": HtmlPage("register.html", 200, no_store=True),
    "register form with errors": HtmlPage("register.html", 422, no_store=True),
    "registered": HtmlPage("registered.html", 200, no_store=True),
    # The same once its welcome email is sent: no script left on it.
    "registered: sent": HtmlPage("registered.html", 200, no_store=True),
    # The link's page, with its button; the button's answer; the link opened again.
    "verify: asked": HtmlPage("verify.html", 200, no_store=True),
    "verify: confirmed": HtmlPage("verify.html", 200, no_store=True),
    "verify: already confirmed": HtmlPage("verify.html", 200, no_store=True),
    "verify: expired": HtmlPage("verify.html", 410, no_store=True),
    "verify: invalid": HtmlPage("verify.html", 400, no_store=True),
    "resend form": HtmlPage("resend.html", 200, no_store=True),
    "resend form with errors": HtmlPage("resend.html", 422, no_store=True),
    "resend sent": HtmlPage("resend_sent.html", 200, no_store=True),
    # Signing in: the form, a wrong password on it, and the page it leads to.
    "login form": HtmlPage("login.html", 200, no_store=True),
    "login form: wrong login": HtmlPage("login.html", 401, no_store=True),
    "account": HtmlPage("account.html", 200, no_store=True),
    # The password reset: asking, the link's page, a weak password, the link used and
    # forged, and where a completed reset leads.
    "password forgot form": HtmlPage("password_forgot.html", 200, no_store=True),
    "password forgot form with errors": HtmlPage("password_forgot.html", 422, no_store=True),
    "password forgot sent": HtmlPage("password_forgot_sent.html", 200, no_store=True),
    "password reset: asked": HtmlPage("password_reset.html", 200, no_store=True),
    "password reset: weak password": HtmlPage("password_reset.html", 422, no_store=True),
    "login form: password changed": HtmlPage("login.html", 200, no_store=True),
    "password reset: used": HtmlPage("password_reset.html", 400, no_store=True),
    "password reset: invalid": HtmlPage("password_reset.html", 400, no_store=True),
    # Changing the address from the account page: a wrong password, the "check your new
    # inbox" page, the new address's link (asked, done, used) and the old one's (asked,
    # done: everything signed out, used).
    "account: address change refused": HtmlPage("account.html", 401, no_store=True),
    "address change sent": HtmlPage("email_change_sent.html", 200, no_store=True),
    "email confirm: asked": HtmlPage("email_confirm.html", 200, no_store=True),
    "email confirm: done": HtmlPage("email_confirm.html", 200, no_store=True),
    "email confirm: used": HtmlPage("email_confirm.html", 400, no_store=True),
    "email revert: asked": HtmlPage("email_revert.html", 200, no_store=True),
    "email revert: done": HtmlPage("email_revert.html", 200, no_store=True),
    "email revert: used": HtmlPage("email_revert.html", 400, no_store=True),
    # The answers of POST /register when Argon2's queue is full, and when the database is down.
    "busy": HtmlPage("busy.html", 503, no_store=True),
    "unavailable": HtmlPage("unavailable.html", 503, no_store=True),
    # The operator page (OPS_PASSWORD set): every job; after a retry (its notice); filtered
    # by a state its bulk actions apply to.
    "ops jobs": HtmlPage("ops_jobs.html", 200, no_store=True),
    "ops jobs: retried": HtmlPage("ops_jobs.html", 200, no_store=True),
    "ops jobs: failed": HtmlPage("ops_jobs.html", 200, no_store=True),
}
# Reached through an app whose database is down (overload_settings), the rest through a
# working one.
OVERLOAD_PAGES = ("busy", "unavailable")

INVALID_INPUT = {"username": "g!", "email": "grace-at-example", "password": "tiny-pw"}
# The first words of each page's <h1>, to tell the two 503 pages apart.
BUSY_HEADING = "Lots of people are signing up"
UNAVAILABLE_HEADING = "We'll be right back"


def verify_link(app_url: str, body: str) -> str:
    match = re.search(rf"{re.escape(app_url)}/verify\?token=[\w.-]+", body)
    assert match, f"no verification link in: {body!r}"
    return match.group(0)


def expired_token(settings: Settings) -> str:
    """A genuine verification token, signed a year ago (its user need not exist: an
    expired token is answered before any lookup)."""

    class AYearAgo(TimestampSigner):
        def get_timestamp(self) -> int:
            return super().get_timestamp() - 365 * 86400

    serializer = URLSafeTimedSerializer(
        settings.secret_key.get_secret_value(), salt="email-verification", signer=AYearAgo
    )
    return str(serializer.dumps({"uid": str(uuid.uuid4()), "email": "old@example.com"}))


@contextlib.contextmanager
def overload_settings(settings: Settings) -> Iterator[Settings]:
    """An app whose database refuses every connection (a bound port nobody listens on),
    with one Argon2 worker and no queue: a registration it hashes ends on the unavailable
    page, and one that arrives during a hash on the busy page. Start it with
    `ready_path="/livez"`."""
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
        yield settings.model_copy(
            update={
                "database_url": f"postgresql+asyncpg://postgres@127.0.0.1:{port}/app",
                "password_hash_workers": 1,
                "register_queue_limit": 0,
                "job_worker_enabled": False,
            }
        )


@contextlib.asynccontextmanager
async def hasher_kept_busy(app_url: str, *, at_most: int = 300) -> AsyncIterator[None]:
    """One client registering back to back (bounded), so that the only Argon2 worker is
    hashing nearly all the time: another registration meanwhile is shed as busy."""
    stop = asyncio.Event()

    async def flood() -> None:
        async with httpx.AsyncClient(base_url=app_url, timeout=10) as http:
            for i in range(at_most):
                if stop.is_set():
                    return
                await http.post("/api/register", json=user_json(f"flood{i}"))

    task = asyncio.create_task(flood())
    try:
        await asyncio.sleep(0.2)  # the first hash is under way
        yield
    finally:
        stop.set()
        await task


def heading(response: httpx.Response) -> str:
    match = re.search(r"<h1>(.*?)</h1>", response.text)
    return match.group(1) if match else ""


async def fetch_app_pages(
    app_url: str, mailhog: MailHog, settings: Settings
) -> dict[str, httpx.Response]:
    """The working app's pages, reached as a browser would (cookies kept, redirects followed)."""
    pages: dict[str, httpx.Response] = {}
    async with httpx.AsyncClient(base_url=app_url, timeout=10, follow_redirects=True) as http:
        pages["register form"] = form = await http.get("/register")
        token = csrf_token(form.text)
        pages["register form with errors"] = await http.post(
            "/register", data={"csrf_token": token, **INVALID_INPUT}
        )
        pages["registered"] = await http.post(
            "/register", data={"csrf_token": token, **user_json("ada")}
        )
        [mail] = await mailhog.wait_for(1)
        pages["registered: sent"] = await http.get("/register/done")
        link = verify_link(app_url, mail.part("text/plain"))
        pages["verify: asked"] = asked = await http.get(link)
        pages["verify: confirmed"] = await http.post(
            "/verify",
            data={
                "token": hidden_field(asked.text, "token"),
                "csrf_token": csrf_token(asked.text),
            },
        )
        pages["verify: already confirmed"] = await http.get(link)
        pages["verify: expired"] = await http.get(
            "/verify", params={"token": expired_token(settings)}
        )
        pages["verify: invalid"] = await http.get("/verify", params={"token": "not-a-token"})
        pages["resend form"] = resend = await http.get("/verify/resend")
        token = csrf_token(resend.text)
        pages["resend form with errors"] = await http.post(
            "/verify/resend", data={"csrf_token": token, "email": INVALID_INPUT["email"]}
        )
        pages["resend sent"] = await http.post(
            "/verify/resend", data={"csrf_token": token, "email": "ada@example.com"}
        )
        pages["login form"] = login = await http.get("/login")
        sign_in = {"csrf_token": csrf_token(login.text), "login": "ada"}
        pages["login form: wrong login"] = await http.post(
            "/login", data={**sign_in, "password": "not the password"}
        )
        pages["account"] = await http.post("/login", data={**sign_in, "password": PASSWORD})
        pages |= await _fetch_reset_pages(http, mailhog)
        # After the reset: the change's notice to ada's address would use the last of its
        # mail budget, which the reset email needs.
        account = await http.post("/login", data={**sign_in, "password": NEW_PASSWORD})
        pages |= await _fetch_change_pages(http, mailhog, csrf_token(account.text))
        pages["ops jobs"] = await http.get("/ops/jobs", auth=OPS_AUTH)
        # The registration's jobs have all succeeded, so the page shows no action's form (and
        # no token for it): the token is made here, as the page would make it for this
        # browser. A retry of the first job finds it succeeded.
        secret = settings.secret_key.get_secret_value()
        ops_token = Csrf(secret, secure_cookies=False).token_for(
            http.cookies[COOKIE_NAME], form="ops_jobs.html"
        )
        pages["ops jobs: retried"] = await http.post(
            "/ops/jobs/retry", data={"csrf_token": ops_token, "job_id": "1"}, auth=OPS_AUTH
        )
        pages["ops jobs: failed"] = await http.get(
            "/ops/jobs", params={"state": "failed"}, auth=OPS_AUTH
        )
    return pages


# The password a reset walk chooses (tests/test_accessibility.py's too).
NEW_PASSWORD = "a brand new horse"


async def _fetch_reset_pages(
    http: httpx.AsyncClient, mailhog: MailHog
) -> dict[str, httpx.Response]:
    """The reset's pages for ada, from the forgot form to the login form it leads to."""
    pages: dict[str, httpx.Response] = {}
    pages["password forgot form"] = forgot = await http.get("/password/forgot")
    token = csrf_token(forgot.text)
    pages["password forgot form with errors"] = await http.post(
        "/password/forgot", data={"csrf_token": token, "email": INVALID_INPUT["email"]}
    )
    pages["password forgot sent"] = await http.post(
        "/password/forgot", data={"csrf_token": token, "email": "ada@example.com"}
    )
    [mail] = await mails_about(mailhog, "choose a new password")
    link = {"token": reset_token(mail.part("text/plain"))}
    pages["password reset: asked"] = asked = await http.get("/password/reset", params=link)
    form = {**link, "csrf_token": csrf_token(asked.text)}
    pages["password reset: weak password"] = await http.post(
        "/password/reset", data={**form, "password": "tiny"}
    )
    pages["login form: password changed"] = await http.post(
        "/password/reset", data={**form, "password": NEW_PASSWORD}
    )
    pages["password reset: used"] = await http.get("/password/reset", params=link)
    pages["password reset: invalid"] = await http.get(
        "/password/reset", params={"token": "not-a-token"}
    )
    return pages


# The address a walk moves ada to (and back from), tests/test_accessibility.py's too.
CHANGED_EMAIL = "ada@new.example.com"


async def _fetch_change_pages(
    http: httpx.AsyncClient, mailhog: MailHog, account_token: str
) -> dict[str, httpx.Response]:
    """ada's address changed from the account page, confirmed, then undone (which signs
    her out): her address is ada@example.com again afterwards."""
    pages: dict[str, httpx.Response] = {}
    form = {"csrf_token": account_token, "email": CHANGED_EMAIL}
    pages["account: address change refused"] = await http.post(
        "/account/email", data={**form, "password": "not the password"}
    )
    # Her password since the reset walk.
    pages["address change sent"] = await http.post(
        "/account/email", data={**form, "password": NEW_PASSWORD}
    )
    [confirm] = await mails_about(mailhog, CONFIRM_SUBJECT)
    [notice] = await mails_about(mailhog, NOTICE_SUBJECT)
    for purpose, mail in (("confirm", confirm), ("revert", notice)):
        link = {"token": change_token(mail.part("text/plain"), purpose)}
        pages[f"email {purpose}: asked"] = asked = await http.get(f"/email/{purpose}", params=link)
        pages[f"email {purpose}: done"] = await http.post(
            f"/email/{purpose}", data={**link, "csrf_token": csrf_token(asked.text)}
        )
        pages[f"email {purpose}: used"] = await http.get(f"/email/{purpose}", params=link)
    return pages


async def fetch_overload_pages(app_url: str) -> dict[str, httpx.Response]:
    """The busy and unavailable pages, from an app made with overload_settings."""
    pages: dict[str, httpx.Response] = {}
    async with httpx.AsyncClient(base_url=app_url, timeout=10) as http:
        token = csrf_token((await http.get("/register")).text)
        submit = {"csrf_token": token, **user_json("ada")}
        pages["unavailable"] = await http.post("/register", data=submit)
        async with hasher_kept_busy(app_url):
            deadline = time.monotonic() + 10
            while "busy" not in pages and time.monotonic() < deadline:
                answer = await http.post("/register", data=submit)
                if heading(answer).startswith(BUSY_HEADING):
                    pages["busy"] = answer
    return pages


def send_sample_mail(smtp_port: int) -> None:
    """A multipart email styled as emails are (inline style attributes), to the inbox."""
    message = EmailMessage()
    message["From"] = "Welcome Desk <welcome@example.com>"
    message["To"] = "ada@example.com"
    message["Subject"] = "Welcome, ada! Please confirm your email"
    message.set_content("Hi ada,\nConfirm: http://127.0.0.1:8000/verify?token=abc\n")
    message.add_alternative(SAMPLE_MAIL_HTML, subtype="html")
    with smtplib.SMTP("127.0.0.1", smtp_port, timeout=10) as smtp:
        smtp.send_message(message)


SAMPLE_MAIL_HTML = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Welcome, ada</title></head>
<body style="margin:0;padding:24px;background:#f4f6fa;color:#1d2330;">
<h1 style="font-size:22px;color:#1d2330;">Hi ada,</h1>
<p><a href="http://127.0.0.1:8000/verify?token=abc" style="color:#2f5bd3;">Confirm my email</a></p>
</body></html>
"""
