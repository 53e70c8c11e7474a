"""Addresses as mail servers see them: IDNA 2008 domains, and local parts that only
SMTPUTF8 can carry, refused at registration when the relay cannot take them."""

import aiosmtplib
import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from backend.mail.addresses import mixed_script_label
from backend.settings import Settings
from tests.support.app_client import app_client
from tests.support.helpers import PASSWORD, csrf_token, rows
from tests.support.mailhog import MailEndpoints, MailHog


async def test_a_domain_goes_to_the_server_in_idna_2008(
    client: httpx.AsyncClient, mailhog: MailHog
) -> None:
    response = await client.post(
        "/api/register",
        json={"username": "gretel", "email": "gretel@straße.de", "password": PASSWORD},
    )
    assert response.status_code == 201
    [mail] = await mailhog.wait_for(1)
    # IDNA 2003 (Python's "idna" codec) would have sent it to strasse.de, another domain.
    assert mail.to == ["gretel@xn--strae-oqa.de"]


async def test_a_non_ascii_local_part_is_refused_when_the_relay_lacks_smtputf8(
    client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    response = await client.post(
        "/api/register",
        json={"username": "jose", "email": "josé@example.com", "password": PASSWORD},
    )
    assert response.status_code == 422
    [error] = response.json()["detail"]
    assert error["loc"] == ["body", "email"] and "non-ASCII" in error["msg"]

    page = await client.get("/register")
    form = await client.post(
        "/register",
        data={
            "username": "jose",
            "email": "josé@example.com",
            "password": PASSWORD,
            "csrf_token": csrf_token(page.text),
        },
    )
    assert form.status_code == 422
    assert "non-ASCII characters before the @" in form.text
    assert await rows(engine, "SELECT id FROM users") == []
    assert await rows(engine, "SELECT id FROM jobs") == []


async def test_with_smtputf8_a_non_ascii_local_part_is_delivered(
    settings: Settings, mail_endpoints: MailEndpoints, mailhog: MailHog
) -> None:
    smtp = aiosmtplib.SMTP(hostname=mail_endpoints.smtp_host, port=mail_endpoints.smtp_port)
    async with smtp:
        await smtp.ehlo()
        if not smtp.supports_extension("smtputf8"):
            pytest.skip("this mail server does not offer SMTPUTF8")
    async with app_client(settings.model_copy(update={"mail_smtputf8": True})) as client:
        response = await client.post(
            "/api/register",
            json={"username": "jose", "email": "josé@example.com", "password": PASSWORD},
        )
        assert response.status_code == 201
    [mail] = await mailhog.wait_for(1)
    assert mail.to == ["josé@example.com"]


@pytest.mark.parametrize(
    "domain",
    # Cyrillic e and x in "example", a Greek alpha in "apple", Cyrillic o's in "google"
    # (escaped: they look like Latin letters, which is the point).
    ["\u0435\u0445ample.com", "\u03b1pple.com", "xn--ample-ywe6i.com", "mail.g\u043e\u043egle.com"],
)
async def test_a_lookalike_domain_mixing_alphabets_is_refused(
    client: httpx.AsyncClient, engine: AsyncEngine, domain: str
) -> None:
    response = await client.post(
        "/api/register",
        json={"username": "admin", "email": f"admin@{domain}", "password": PASSWORD},
    )
    assert response.status_code == 422
    [error] = response.json()["detail"]
    assert error["loc"] == ["body", "email"] and "alphabets" in error["msg"]
    assert await rows(engine, "SELECT id FROM users") == []


@pytest.mark.parametrize(
    "domain", ["bücher.de", "пример.рф", "παράδειγμα.gr", "日本語とカタカナ.jp", "한국어.kr"]
)
def test_a_domain_of_one_alphabet_or_a_cjk_mix_is_not_a_lookalike(domain: str) -> None:
    assert mixed_script_label(domain) is None
