"""The password reset for programs: POST /api/password/forgot and /api/password/reset.
One link, two resets at once: exactly one wins. A link dies once the password changes.
A completed reset confirms the address and clears the login's sign-in count. The limits,
per client (429) and per address (the email dropped, the answer the same)."""

import asyncio

import httpx
import pytest
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine

from backend.accounts.password_reset import reset_password
from backend.db import create_sessionmaker
from backend.settings import Settings
from tests.support.app_client import app_client
from tests.support.durability import HASHER, refusing_inserts
from tests.support.helpers import (
    PASSWORD,
    bearer_token,
    confirmed_user,
    jobs_settled,
    mails_about,
    register_via_api,
    reset_token,
    rows,
)
from tests.support.mailhog import MailHog

NEW_PASSWORD = "a brand new horse"


async def reset_tokens(client: httpx.AsyncClient, mailhog: MailHog, count: int = 1) -> list[str]:
    for _ in range(count):
        answer = await client.post("/api/password/forgot", json={"email": "ada@example.com"})
        assert answer.status_code == 202
    mails = await mails_about(mailhog, "choose a new password", count)
    return [reset_token(mail.part("text/plain")) for mail in mails]


async def test_any_well_formed_address_gets_the_same_202(
    client: httpx.AsyncClient, engine: AsyncEngine, mailhog: MailHog
) -> None:
    await confirmed_user(client, engine, "ada")
    known = await client.post("/api/password/forgot", json={"email": "ada@example.com"})
    unknown = await client.post("/api/password/forgot", json={"email": "bob@example.com"})
    assert known.status_code == unknown.status_code == 202
    assert known.json() == unknown.json()
    for body in ({"email": "not-an-address"}, {}, {"email": "a\x00@example.com"}):
        assert (await client.post("/api/password/forgot", json=body)).status_code == 422
    await jobs_settled(engine)
    assert len(await mails_about(mailhog, "choose a new password")) == 1
    assert await mailhog.to("bob@example.com") == []


async def test_two_resets_at_once_with_one_link_exactly_one_wins(
    client: httpx.AsyncClient, engine: AsyncEngine, mailhog: MailHog
) -> None:
    await confirmed_user(client, engine, "ada")
    [token] = await reset_tokens(client, mailhog)

    answers = await asyncio.gather(
        *(
            client.post("/api/password/reset", json={"token": token, "password": f"{p} horse!"})
            for p in ("first", "second")
        )
    )

    assert sorted(a.status_code for a in answers) == [204, 400]
    resets = await rows(engine, "SELECT id FROM audit_log WHERE action = 'user.password_reset'")
    assert len(resets) == 1
    winner = "first" if answers[0].status_code == 204 else "second"
    signed_in = await client.post(
        "/api/token", data={"username": "ada", "password": f"{winner} horse!"}
    )
    assert signed_in.status_code == 200


async def test_a_link_dies_once_the_password_changes(
    client: httpx.AsyncClient, engine: AsyncEngine, mailhog: MailHog
) -> None:
    await confirmed_user(client, engine, "ada")
    first, second = await reset_tokens(client, mailhog, 2)
    assert first != second
    done = await client.post(
        "/api/password/reset", json={"token": second, "password": NEW_PASSWORD}
    )
    assert done.status_code == 204
    late = await client.post("/api/password/reset", json={"token": first, "password": "x" * 12})
    assert late.status_code == 400
    assert "ask for a new one" in late.json()["detail"]
    page = await client.get("/password/reset", params={"token": first})
    assert page.status_code == 400 and "already used" in page.text


async def test_a_reset_confirms_the_address_and_clears_the_logins_count(
    settings: Settings, engine: AsyncEngine, mailhog: MailHog
) -> None:
    limited = settings.model_copy(update={"signin_rate_limit": "2/minute"})
    app = app_client(limited)
    async with app as client:
        await register_via_api(client, "ada")  # not confirmed
        stranger = app.new_client(("127.0.0.2", 123))
        owner = app.new_client(("127.0.0.3", 123))
        try:
            for _ in range(2):
                wrong = {"username": "ada", "password": "guessing..."}
                assert (await stranger.post("/api/token", data=wrong)).status_code == 401
            right = {"username": "ada", "password": PASSWORD}
            assert (await owner.post("/api/token", data=right)).status_code == 429

            [token] = await reset_tokens(client, mailhog)
            reset = {"token": token, "password": NEW_PASSWORD}
            assert (await client.post("/api/password/reset", json=reset)).status_code == 204

            again = {"username": "ada", "password": NEW_PASSWORD}
            assert (await owner.post("/api/token", data=again)).status_code == 200
        finally:
            await stranger.aclose()
            await owner.aclose()
    [user] = await rows(engine, "SELECT email_verified_at, password_changed_at FROM users")
    assert user["email_verified_at"] is not None and user["password_changed_at"] is not None


async def test_past_the_limits_per_client_429_and_per_address_the_same_202(
    settings: Settings, engine: AsyncEngine, mailhog: MailHog
) -> None:
    limited = settings.model_copy(update={"password_reset_rate_limit": "2/minute"})
    app = app_client(limited)
    async with app as client:
        await confirmed_user(client, engine, "ada")
        others = [app.new_client((f"127.0.0.{n}", 123)) for n in (2, 3)]
        try:
            ask = {"email": "bob@example.com"}
            statuses = [(await client.post("/api/password/forgot", json=ask)).status_code]
            statuses.append((await client.post("/api/password/forgot", json=ask)).status_code)
            refused = await client.post("/api/password/forgot", json=ask)
            assert statuses == [202, 202] and refused.status_code == 429
            assert int(refused.headers["retry-after"]) >= 1
            # One address from three clients: three 202s, two emails.
            ada = {"email": "ada@example.com"}
            asked = [await http.post("/api/password/forgot", json=ada) for http in others]
            asked.append(await others[0].post("/api/password/forgot", json=ada))
            assert [a.status_code for a in asked] == [202, 202, 202]
        finally:
            for http in others:
                await http.aclose()
    await jobs_settled(engine)
    assert len(await mails_about(mailhog, "choose a new password", 2)) == 2


async def test_a_reset_that_fails_midway_writes_nothing(
    client: httpx.AsyncClient, engine: AsyncEngine, mailhog: MailHog
) -> None:
    await confirmed_user(client, engine, "ada")
    bearer = await bearer_token(client, "ada")
    [token] = await reset_tokens(client, mailhog)
    [before] = await rows(engine, "SELECT password_hash FROM users")

    # The database refuses the "password changed" email's job, the last write of the
    # transaction: everything before it must be rolled back with it.
    async with (
        refusing_inserts(engine, "jobs") as refusal,
        create_sessionmaker(engine)() as session,
    ):
        with pytest.raises(DBAPIError, match=refusal):
            await reset_password(
                session,
                token=token,
                password=NEW_PASSWORD,
                channel="api",
                hasher=HASHER,
                sender_address="welcome@example.com",
            )

    [after] = await rows(engine, "SELECT password_hash, password_changed_at FROM users")
    assert after == {"password_hash": before["password_hash"], "password_changed_at": None}
    assert (
        await rows(engine, "SELECT id FROM password_reset_tokens WHERE used_at IS NOT NULL") == []
    )
    assert await rows(engine, "SELECT id FROM sessions WHERE revoked_at IS NOT NULL") == []
    me = await client.get("/api/me", headers={"Authorization": f"Bearer {bearer}"})
    assert me.status_code == 200
    # And the link still works once the database accepts the writes again.
    reset = {"token": token, "password": NEW_PASSWORD}
    assert (await client.post("/api/password/reset", json=reset)).status_code == 204
