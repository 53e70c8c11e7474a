"""Changing the address with bad input: a wrong password (401), malformed bodies (422),
no bearer token (401), forged, used and expired links (a friendly 400 page), forms
without their CSRF token (403); and the form on /account. Never a 5xx, and nothing is
written by a refused request."""

import httpx
from sqlalchemy.ext.asyncio import AsyncEngine

from backend.settings import Settings
from tests.support.app_client import app_client
from tests.support.durability import wait_until
from tests.support.helpers import (
    CONFIRM_SUBJECT,
    NOTICE_SUBJECT,
    PASSWORD,
    bearer_token,
    change_token,
    confirmed_user,
    csrf_token,
    execute,
    hidden_field,
    mails_about,
    rows,
    sign_in_form,
)
from tests.support.mailhog import MailHog
from tests.test_email_change import ask_change


async def nothing_written(engine: AsyncEngine) -> None:
    assert await rows(engine, "SELECT id FROM email_changes") == []
    assert await rows(engine, "SELECT id FROM jobs WHERE kind LIKE 'email.change%'") == []
    [user] = await rows(engine, "SELECT email FROM users WHERE username = 'ada'")
    assert user["email"] == "ada@example.com"


async def test_wrong_password_malformed_bodies_and_no_token_are_refused(
    client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    await confirmed_user(client, engine, "ada")
    bearer = await bearer_token(client, "ada")
    auth = {"Authorization": f"Bearer {bearer}"}

    wrong = await ask_change(client, bearer, "ada@new.example.com", password="not it at all")
    assert wrong.status_code == 401 and wrong.json() == {"detail": "Incorrect password"}
    for body in (
        {"email": "not-an-address", "password": PASSWORD},
        {"email": "ada@new.example.com"},
        {"password": PASSWORD},
        {"email": "ada@new.example.com", "password": ""},
        {"email": "ada@new.example.com", "password": "x" * 5000},
        {"email": ["ada@new.example.com"], "password": PASSWORD},
        # A lookalike domain (Cyrillic letters among Latin ones), as registration refuses.
        {"email": "ada@ex\u0430mple.com", "password": PASSWORD},
        # The current address, in another letter case.
        {"email": "ADA@example.com", "password": PASSWORD},
    ):
        answer = await client.post("/api/me/email", json=body, headers=auth)
        assert answer.status_code == 422, (body, answer.text)
    not_json = await client.post(
        "/api/me/email", content=b"{nope", headers={**auth, "Content-Type": "application/json"}
    )
    assert not_json.status_code == 422
    anonymous = await client.post(
        "/api/me/email", json={"email": "ada@new.example.com", "password": PASSWORD}
    )
    assert anonymous.status_code == 401
    await nothing_written(engine)


async def test_forged_used_and_expired_links_get_a_friendly_page(
    client: httpx.AsyncClient, engine: AsyncEngine, mailhog: MailHog
) -> None:
    for purpose in ("confirm", "revert"):
        for params in ({"token": "not-a-token"}, {}, {"token": "a" * 5000}, {"token": "a\x00b"}):
            page = await client.get(f"/email/{purpose}", params=params)
            assert page.status_code == 400, (purpose, params)
            assert "This link doesn't work" in page.text

    await confirmed_user(client, engine, "ada")
    assert (
        await ask_change(client, await bearer_token(client, "ada"), "n@x.org")
    ).status_code == 202
    [confirm] = await mails_about(mailhog, CONFIRM_SUBJECT)
    [notice] = await mails_about(mailhog, NOTICE_SUBJECT)
    confirm_token = change_token(confirm.part("text/plain"), "confirm")
    revert_token = change_token(notice.part("text/plain"), "revert")
    # A link of one kind does not work as the other.
    assert (await client.get("/email/revert", params={"token": confirm_token})).status_code == 400
    assert (await client.get("/email/confirm", params={"token": revert_token})).status_code == 400

    page = await client.get("/email/confirm", params={"token": confirm_token})
    form = {"token": confirm_token, "csrf_token": hidden_field(page.text, "csrf_token")}
    # Without its own CSRF token the button does nothing.
    for token in ("", "forged", csrf_token((await client.get("/login")).text)):
        refused = await client.post("/email/confirm", data={**form, "csrf_token": token})
        assert refused.status_code == 403 and 'action="/email/confirm"' in refused.text
    forged = await client.post("/email/confirm", data={**form, "token": "forged"})
    assert forged.status_code == 400 and "This link doesn't work" in forged.text

    await execute(engine, "UPDATE email_change_tokens SET expires_at = now() - interval '1s'")
    for purpose, token in (("confirm", confirm_token), ("revert", revert_token)):
        expired = await client.get(f"/email/{purpose}", params={"token": token})
        assert expired.status_code == 400 and "This link has expired" in expired.text
    pressed = await client.post("/email/confirm", data=form)
    assert pressed.status_code == 400 and "This link has expired" in pressed.text
    [user] = await rows(engine, "SELECT email FROM users")
    assert user["email"] == "ada@example.com"


async def test_a_revert_before_confirmation_cancels_the_change(
    client: httpx.AsyncClient, engine: AsyncEngine, mailhog: MailHog
) -> None:
    await confirmed_user(client, engine, "ada")
    bearer = await bearer_token(client, "ada")
    assert (await ask_change(client, bearer, "thief@example.net")).status_code == 202
    [confirm] = await mails_about(mailhog, CONFIRM_SUBJECT)
    [notice] = await mails_about(mailhog, NOTICE_SUBJECT)
    revert_token = change_token(notice.part("text/plain"), "revert")
    page = await client.get("/email/revert", params={"token": revert_token})
    assert "cancels the change" in page.text
    form = {"token": revert_token, "csrf_token": hidden_field(page.text, "csrf_token")}
    undone = await client.post("/email/revert", data=form)
    assert undone.status_code == 200 and "it never changed" in undone.text

    # The confirm link is dead, and so is the bearer token that asked for the change.
    confirm_token = change_token(confirm.part("text/plain"), "confirm")
    late = await client.get("/email/confirm", params={"token": confirm_token})
    assert late.status_code == 400
    me = await client.get("/api/me", headers={"Authorization": f"Bearer {bearer}"})
    assert me.status_code == 401
    [user] = await rows(engine, "SELECT email FROM users")
    assert user["email"] == "ada@example.com"
    audit = await wait_until(
        engine,
        "SELECT details FROM audit_log WHERE action = 'email.change_reverted'",
        lambda found: len(found) == 1,
    )
    assert audit[0]["details"]["restored"] is False


async def test_the_form_on_the_account_page(
    settings: Settings, engine: AsyncEngine, mailhog: MailHog
) -> None:
    async with app_client(settings) as client:
        await confirmed_user(client, engine, "ada")
        await sign_in_form(client, "ada")
        account = await client.get("/account")
        assert 'action="/account/email"' in account.text
        form = {"csrf_token": csrf_token(account.text), "email": "ada@new.example.com"}

        wrong = await client.post("/account/email", data={**form, "password": "not it at all"})
        assert wrong.status_code == 401 and 'id="change-password-error"' in wrong.text
        assert 'value="ada@new.example.com"' in wrong.text and "not it at all" not in wrong.text
        bad = await client.post(
            "/account/email", data={**form, "email": "nope", "password": PASSWORD}
        )
        assert bad.status_code == 422 and 'id="change-email-error"' in bad.text
        forged = await client.post(
            "/account/email", data={**form, "csrf_token": "forged", "password": PASSWORD}
        )
        assert forged.status_code == 403
        await nothing_written(engine)

        sent = await client.post("/account/email", data={**form, "password": PASSWORD})
        assert sent.status_code == 200 and "Check your new inbox" in sent.text
        [confirm] = await mails_about(mailhog, CONFIRM_SUBJECT)
        assert confirm.to == ["ada@new.example.com"]

        client.cookies.clear()
        signed_out = await client.post("/account/email", data={**form, "password": PASSWORD})
        assert signed_out.status_code == 303 and signed_out.headers["location"] == "/login"
