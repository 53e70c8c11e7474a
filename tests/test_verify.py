"""The link from the email: its GET shows the account and a button, changing nothing (mail
scanners open every link); the button's POST confirms. Confirmed, already confirmed,
expired, forged."""

import asyncio

import httpx
import pytest
from pydantic import SecretStr
from sqlalchemy.ext.asyncio import AsyncEngine

from backend.accounts.tokens import human_duration
from backend.devstack.app_process import AppProcess
from backend.settings import Settings
from tests.support.app_client import app_client
from tests.support.helpers import (
    confirm,
    csrf_token,
    hidden_field,
    jobs_settled,
    register_via_api,
    rows,
    verify_link,
)
from tests.support.mailhog import MailHog
from tests.support.pages import expired_token


async def _link_from_inbox(mailhog: MailHog) -> str:
    [mail] = await mailhog.wait_for(1)
    return verify_link(mail.part("text/plain"))


async def test_link_from_the_email_confirms_the_address(
    client: httpx.AsyncClient, mailhog: MailHog, engine: AsyncEngine
) -> None:
    user = await register_via_api(client, "ada")
    link = await _link_from_inbox(mailhog)

    response = await confirm(client, link)

    assert response.status_code == 200
    assert "Email confirmed" in response.text and "Thanks, ada" in response.text
    [stored] = await rows(engine, "SELECT email_verified_at FROM users")
    assert stored["email_verified_at"] is not None
    audit = await rows(engine, "SELECT user_id FROM audit_log WHERE action = 'user.email_verified'")
    assert [str(a["user_id"]) for a in audit] == [user["id"]]


async def test_opening_the_link_confirms_nothing(
    client: httpx.AsyncClient, mailhog: MailHog, engine: AsyncEngine
) -> None:
    await register_via_api(client, "ada")
    link = await _link_from_inbox(mailhog)

    # A mail scanner (Safe Links, Proofpoint) opens it, once or many times.
    pages = [await client.get(link) for _ in range(3)]

    for page in pages:
        assert page.status_code == 200
        assert "Confirm your email address" in page.text and "<strong>ada</strong>" in page.text
        assert 'action="/verify"' in page.text and hidden_field(page.text, "token")
    [stored] = await rows(engine, "SELECT email_verified_at FROM users")
    assert stored["email_verified_at"] is None
    assert await rows(engine, "SELECT id FROM audit_log WHERE action = 'user.email_verified'") == []


async def test_the_button_needs_its_form_token(
    client: httpx.AsyncClient, mailhog: MailHog, engine: AsyncEngine
) -> None:
    await register_via_api(client, "ada")
    page = await client.get(await _link_from_inbox(mailhog))
    token = hidden_field(page.text, "token")
    other_form = csrf_token((await client.get("/verify/resend")).text)

    for csrf in ["", "forged", other_form]:
        refused = await client.post("/verify", data={"token": token, "csrf_token": csrf})
        assert refused.status_code == 403, csrf
        assert "did not come from this site" in refused.text
        assert 'action="/verify"' in refused.text  # the button again, with a fresh token
    cross_site = await client.post(
        "/verify",
        data={"token": token, "csrf_token": hidden_field(page.text, "csrf_token")},
        headers={"Origin": "https://evil.example"},
    )
    assert cross_site.status_code == 403
    [stored] = await rows(engine, "SELECT email_verified_at FROM users")
    assert stored["email_verified_at"] is None


async def test_a_bad_token_posted_gets_the_friendly_page(
    client: httpx.AsyncClient, mailhog: MailHog, engine: AsyncEngine
) -> None:
    await register_via_api(client, "ada")
    page = await client.get(await _link_from_inbox(mailhog))
    csrf = hidden_field(page.text, "csrf_token")
    for token in ["not-a-token", "", hidden_field(page.text, "token")[:-3] + "AAA"]:
        posted = await client.post("/verify", data={"token": token, "csrf_token": csrf})
        assert posted.status_code == 400, token
        assert "This link doesn't work" in posted.text
    [stored] = await rows(engine, "SELECT email_verified_at FROM users")
    assert stored["email_verified_at"] is None


async def test_reused_link_says_already_confirmed(
    client: httpx.AsyncClient, mailhog: MailHog, engine: AsyncEngine
) -> None:
    await register_via_api(client, "ada")
    link = await _link_from_inbox(mailhog)
    await confirm(client, link)

    again = await client.get(link)

    assert again.status_code == 200
    assert "already confirmed" in again.text
    verified = await rows(engine, "SELECT id FROM audit_log WHERE action = 'user.email_verified'")
    assert len(verified) == 1


async def test_expired_link_gets_a_friendly_page(
    settings: Settings, mailhog: MailHog, engine: AsyncEngine
) -> None:
    short_lived = settings.model_copy(update={"verification_max_age_seconds": 1})
    async with app_client(short_lived) as client:
        await register_via_api(client, "ada")
        link = await _link_from_inbox(mailhog)
        await asyncio.sleep(2.1)

        response = await client.get(link)

    assert response.status_code == 410
    assert "This link has expired" in response.text
    # No dead end: the page leads to a new link.
    assert '<a href="/verify/resend">Get a new confirmation link</a>' in response.text
    assert "contact support" not in response.text
    assert "valid for 1 second," in response.text
    [stored] = await rows(engine, "SELECT email_verified_at FROM users")
    assert stored["email_verified_at"] is None


async def test_forged_or_missing_tokens_get_a_friendly_page(
    client: httpx.AsyncClient, mailhog: MailHog, engine: AsyncEngine
) -> None:
    await register_via_api(client, "ada")
    link = await _link_from_inbox(mailhog)
    forged = link[:-3] + ("AAA" if not link.endswith("AAA") else "BBB")

    for url in (forged, "/verify?token=not-a-token", "/verify"):
        response = await client.get(url)
        assert response.status_code == 400, url
        assert "This link doesn't work" in response.text
    [stored] = await rows(engine, "SELECT email_verified_at FROM users")
    assert stored["email_verified_at"] is None


async def test_token_signed_with_another_key_is_refused(
    settings: Settings, mailhog: MailHog
) -> None:
    other = settings.model_copy(update={"secret_key": SecretStr("another-secret-key-entirely")})
    async with app_client(other) as client:
        await register_via_api(client, "ada")
    link = await _link_from_inbox(mailhog)
    async with app_client(settings) as client:
        response = await client.get(link)
    assert response.status_code == 400


async def test_absurdly_long_token_gets_the_friendly_page(client: httpx.AsyncClient) -> None:
    response = await client.get("/verify", params={"token": "a" * 5000})
    assert response.status_code == 400
    assert response.headers["content-type"].startswith("text/html")
    assert "This link doesn't work" in response.text


@pytest.mark.parametrize(
    ("seconds", "said"),
    [
        (172800, "48 hours"),
        (259200, "3 days"),
        (7 * 86400, "7 days"),
        (86400, "24 hours"),
        (3600, "1 hour"),
        (5400, "90 minutes"),
        (1800, "30 minutes"),
        (60, "1 minute"),
        (45, "45 seconds"),
        (1, "1 second"),
        # Not whole minutes: rounded down in the largest unit it reaches, never up.
        (100000, "27 hours"),
        (3700, "1 hour"),
    ],
)
def test_link_lifetimes_read_as_people_say_them(seconds: int, said: str) -> None:
    assert human_duration(seconds) == said


async def test_the_link_lifetime_shown_follows_the_setting(
    settings: Settings, mailhog: MailHog, engine: AsyncEngine
) -> None:
    half_hour = settings.model_copy(update={"verification_max_age_seconds": 1800})
    with AppProcess(half_hour) as app:
        async with httpx.AsyncClient(base_url=app.url, timeout=10, follow_redirects=True) as http:
            token = csrf_token((await http.get("/register")).text)
            fields = {"username": "ada", "email": "ada@example.com", "password": "long enough pw"}
            registered = await http.post("/register", data={"csrf_token": token, **fields})
            token = csrf_token((await http.get("/verify/resend")).text)
            resent = await http.post(
                "/verify/resend", data={"csrf_token": token, "email": "ada@example.com"}
            )
            expired = await http.get("/verify", params={"token": expired_token(half_hour)})
            await jobs_settled(engine)
            mails = await mailhog.wait_for(2)

    pages = {"registered": registered, "resent": resent, "expired": expired}
    for name, page in pages.items():
        assert "30 minutes" in page.text, name
        assert "48 hours" not in page.text, name
    assert [m.part("text/plain").count("valid for 30 minutes") for m in mails] == [1, 1]
    assert [m.part("text/html").count("valid for 30 minutes") for m in mails] == [1, 1]
