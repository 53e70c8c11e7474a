"""GET /verify: confirmed, already confirmed, expired, forged; the link comes from the email."""

import asyncio

import httpx
from pydantic import SecretStr
from sqlalchemy.ext.asyncio import AsyncEngine

from backend.settings import Settings
from tests.conftest import app_client
from tests.helpers import register_via_api, rows, verify_link
from tests.support.mailhog import MailHog


async def _link_from_inbox(mailhog: MailHog) -> str:
    [mail] = await mailhog.wait_for(1)
    return verify_link(mail.part("text/plain"))


async def test_link_from_the_email_confirms_the_address(
    client: httpx.AsyncClient, mailhog: MailHog, engine: AsyncEngine
) -> None:
    user = await register_via_api(client, "ada")
    link = await _link_from_inbox(mailhog)

    response = await client.get(link)

    assert response.status_code == 200
    assert "Email confirmed" in response.text and "Thanks, ada" in response.text
    [stored] = await rows(engine, "SELECT email_verified_at FROM users")
    assert stored["email_verified_at"] is not None
    audit = await rows(engine, "SELECT user_id FROM audit_log WHERE action = 'user.email_verified'")
    assert [str(a["user_id"]) for a in audit] == [user["id"]]


async def test_reused_link_says_already_confirmed(
    client: httpx.AsyncClient, mailhog: MailHog, engine: AsyncEngine
) -> None:
    await register_via_api(client, "ada")
    link = await _link_from_inbox(mailhog)
    await client.get(link)

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
