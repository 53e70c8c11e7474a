"""MAIL_PER_ADDRESS_LIMIT at registration: the welcome email is counted, never refused."""

import logging

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from backend.settings import Settings
from tests.support.app_client import app_client
from tests.support.helpers import csrf_token, mail_limit, rows, user_json
from tests.support.mailhog import MailHog


async def mail_hits(engine: AsyncEngine) -> list[int]:
    found = await rows(
        engine, "SELECT cardinality(hits) AS n FROM rate_limit_counters WHERE name = 'mail-to'"
    )
    return [row["n"] for row in found]


async def test_a_new_address_is_registered_and_welcomed_even_with_its_budget_used(
    settings: Settings, engine: AsyncEngine, mailhog: MailHog
) -> None:
    settings = settings.model_copy(update={"mail_per_address_limit": "1/hour"})
    limit = mail_limit(engine, settings)
    # Someone asked for mail to this address before it had an account (e.g. a resend).
    assert await limit.retry_after(address="ADA@example.com") is None

    async with app_client(settings) as client:
        response = await client.post("/api/register", json=user_json("ada", "ada@example.com"))

    assert response.status_code == 201
    [mail] = await mailhog.wait_for(1)
    assert mail.to == ["ada@example.com"]
    # Counted past the limit: a resend right after finds the budget used.
    assert await mail_hits(engine) == [2]
    wait = await limit.retry_after(address="ada@example.com")
    assert wait is not None and 3500 < wait <= 3600


async def test_the_welcome_email_uses_one_of_the_budget_and_a_refusal_none(
    settings: Settings, engine: AsyncEngine
) -> None:
    settings = settings.model_copy(update={"mail_per_address_limit": "3/hour"})
    async with app_client(settings) as client:
        created = await client.post("/api/register", json=user_json("bob"))
        taken = await client.post("/api/register", json=user_json("robert", "BOB@example.com"))
        token = csrf_token((await client.get("/register")).text)
        form = await client.post("/register", data={"csrf_token": token, **user_json("carol")})

    assert (created.status_code, taken.status_code, form.status_code) == (201, 409, 303)
    assert sorted(await mail_hits(engine)) == [1, 1]  # bob and carol; the 409 sent nothing
    limit = mail_limit(engine, settings)
    resends = [await limit.retry_after(address="bob@example.com") for _ in range(3)]
    assert resends[:2] == [None, None] and resends[2] is not None


async def test_a_welcome_email_that_cannot_be_counted_still_leaves_a_user(
    settings: Settings, engine: AsyncEngine, caplog: pytest.LogCaptureFixture
) -> None:
    # Nothing listens on port 1: the count fails after the account is committed.
    broken = settings.model_copy(update={"rate_limit_storage_url": "redis://127.0.0.1:1"})
    async with app_client(broken) as client:
        with caplog.at_level(logging.WARNING, logger="backend"):
            response = await client.post("/api/register", json=user_json("dora"))

    assert response.status_code == 201
    assert [row["username"] for row in await rows(engine, "SELECT username FROM users")] == ["dora"]
    assert "could not be counted" in caplog.text
    assert "dora@example.com" not in caplog.text


async def test_a_storage_that_cannot_count_refuses_with_503(settings: Settings) -> None:
    broken = settings.model_copy(
        update={"rate_limit_storage_url": "redis://127.0.0.1:1", "register_rate_limit": "5/hour"}
    )
    async with app_client(broken) as client:
        api = await client.post("/api/register", json=user_json("erin"))
        token = csrf_token((await client.get("/register")).text)
        form = await client.post("/register", data={"csrf_token": token, **user_json("erin")})

    assert api.status_code == 503 and api.headers["retry-after"] == "5"
    assert form.status_code == 503 and form.headers["retry-after"] == "5"
    assert "text/html" in form.headers["content-type"]


async def test_plus_tags_share_one_mailbox_budget(
    settings: Settings, engine: AsyncEngine, mailhog: MailHog
) -> None:
    settings = settings.model_copy(update={"mail_per_address_limit": "3/hour"})
    async with app_client(settings) as client:
        answers = [
            await client.post("/api/register", json=user_json(f"xuser{n}", f"x+{n}@example.com"))
            for n in range(5)
        ]
        token = csrf_token((await client.get("/register")).text)
        form = await client.post(
            "/register", data={"csrf_token": token, **user_json("xuser5", "X+5@example.com")}
        )
        # The mailbox's own address is never refused its welcome email.
        plain = await client.post("/api/register", json=user_json("xuser", "x@example.com"))

    assert [answer.status_code for answer in answers] == [201, 201, 201, 429, 429]
    assert 3000 < int(answers[3].headers["retry-after"]) <= 3600
    assert "+tag" in answers[3].json()["detail"]
    assert form.status_code == 429 and "+tag" in form.text
    assert plain.status_code == 201
    mails = await mailhog.wait_for(4)
    assert sorted(address for mail in mails for address in mail.to) == [
        "x+0@example.com",
        "x+1@example.com",
        "x+2@example.com",
        "x@example.com",
    ]
    users = await rows(engine, "SELECT email FROM users ORDER BY email")
    assert [user["email"] for user in users] == [
        "x+0@example.com",
        "x+1@example.com",
        "x+2@example.com",
        "x@example.com",
    ]
