"""Small helpers the tests share."""

import asyncio
import re
import time
from typing import Any

import httpx
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from backend.accounts.mail_limit import MailLimit
from backend.ratelimits import Limiter, PostgresCounter
from backend.settings import Settings

PASSWORD = "correct horse battery"


def user_json(username: str = "ada", email: str | None = None, **extra: Any) -> dict[str, Any]:
    return {
        "username": username,
        "email": email or f"{username.lower()}@example.com",
        "password": PASSWORD,
        **extra,
    }


async def register_via_api(client: httpx.AsyncClient, username: str = "ada", **kw: Any) -> Any:
    response = await client.post("/api/register", json=user_json(username, **kw))
    assert response.status_code == 201, response.text
    return response.json()


def mail_limit(engine: AsyncEngine, settings: Settings) -> MailLimit:
    """MAIL_PER_ADDRESS_LIMIT as the app builds it, for tests that call the services."""
    limiter = Limiter(
        name="mail-to",
        limit=settings.mail_per_address_limit,
        counter=PostgresCounter(engine),
        secret=settings.secret_key.get_secret_value(),
    )
    return MailLimit(limiter)


async def rows(engine: AsyncEngine, sql: str, **params: Any) -> list[dict[str, Any]]:
    async with engine.connect() as connection:
        result = await connection.execute(text(sql), params)
        return [dict(row._mapping) for row in result]


async def execute(engine: AsyncEngine, sql: str, **params: Any) -> None:
    """One statement, committed (setting up a state: an expired session, an old hash)."""
    async with engine.begin() as connection:
        await connection.execute(text(sql), params)


def csrf_token(html: str) -> str:
    match = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert match, "no csrf_token field in the form"
    return match.group(1)


def verify_link(body: str) -> str:
    match = re.search(r"http://testserver/verify\?token=[A-Za-z0-9_.\-]+", body)
    assert match, f"no verification link in: {body!r}"
    return match.group(0)


async def jobs_settled(engine: AsyncEngine, *, within: float = 20.0) -> list[dict[str, Any]]:
    """Wait until no job is pending or running (the work queued so far is done, or parked);
    returns every job with its kind and status."""
    deadline = time.monotonic() + within
    while True:
        jobs = await rows(engine, "SELECT id, kind, status, last_error FROM jobs ORDER BY id")
        if all(job["status"] in ("succeeded", "failed") for job in jobs):
            return jobs
        if time.monotonic() > deadline:
            raise AssertionError(f"jobs still not settled after {within}s: {jobs}")
        await asyncio.sleep(0.1)


def link_path(body: str) -> str:
    """The verification link in an email, as a path to request from any app address."""
    return verify_link(body).removeprefix("http://testserver")


def hidden_field(html: str, name: str) -> str:
    match = re.search(rf'name="{name}" value="([^"]*)"', html)
    assert match, f"no {name} field in the page"
    return match.group(1)


async def confirm(client: httpx.AsyncClient, link: str) -> httpx.Response:
    """Open a confirmation link and press its button, as a person does: the GET shows the
    account and a form (it confirms nothing), the form's POST confirms. A link whose page
    has no button (expired, invalid, already confirmed) answers with that page."""
    page = await client.get(link)
    if 'action="/verify"' not in page.text:
        return page
    form = {
        "token": hidden_field(page.text, "token"),
        "csrf_token": hidden_field(page.text, "csrf_token"),
    }
    return await client.post("/verify", data=form)


async def confirmed_user(
    client: httpx.AsyncClient, engine: AsyncEngine, username: str = "ada"
) -> Any:
    """A user registered through the API whose address is confirmed (set in the table:
    the link's own flow is tests/test_verify.py's)."""
    user = await register_via_api(client, username)
    await execute(
        engine, "UPDATE users SET email_verified_at = now() WHERE id = :id", id=user["id"]
    )
    return user


async def sign_in_form(
    http: httpx.AsyncClient, login: str, password: str = PASSWORD
) -> httpx.Response:
    """The login form fetched and posted as a browser does (its CSRF token included)."""
    token = csrf_token((await http.get("/login")).text)
    return await http.post(
        "/login", data={"login": login, "password": password, "csrf_token": token}
    )


async def bearer_token(http: httpx.AsyncClient, login: str, password: str = PASSWORD) -> str:
    answer = await http.post("/api/token", data={"username": login, "password": password})
    assert answer.status_code == 200, answer.text
    token: str = answer.json()["access_token"]
    return token


def reset_token(body: str) -> str:
    """The token of the password reset link in an email's part."""
    match = re.search(r"/password/reset\?token=([A-Za-z0-9_\-]+)", body)
    assert match, f"no reset link in: {body!r}"
    return match.group(1)


# The subjects of an address change's emails (to the new address; to the old one).
CONFIRM_SUBJECT = "confirm your new email address"
NOTICE_SUBJECT = "your email address is being changed"


def change_token(body: str, purpose: str) -> str:
    """The token of an address change's link (`confirm` or `revert`) in an email's part."""
    match = re.search(rf"/email/{purpose}\?token=([A-Za-z0-9_\-]+)", body)
    assert match, f"no {purpose} link in: {body!r}"
    return match.group(1)


async def mails_about(
    mailhog: Any, words: str, count: int = 1, *, within: float = 30.0
) -> list[Any]:
    """Wait for `count` delivered emails whose subject contains `words`; returns them."""
    deadline = time.monotonic() + within
    while True:
        found = [m for m in await mailhog.messages() if words in m.subject]
        if len(found) >= count or time.monotonic() > deadline:
            assert len(found) >= count, f"{len(found)} emails about {words!r}, not {count}"
            return found
        await asyncio.sleep(0.1)
