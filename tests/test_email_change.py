"""Changing the address, as people go through it: asked for with the password, both emails
read back through the inbox's API, the links' pages (which change nothing), the buttons;
through a real uvicorn and a real Postgres. A revert brings the old address back and
signs everything out; an address another account has is never taken, even by two
confirmations at once."""

import asyncio

import httpx
from sqlalchemy.ext.asyncio import AsyncEngine

from backend.devstack.app_process import AppProcess
from backend.settings import Settings
from tests.support.durability import wait_until
from tests.support.helpers import (
    CONFIRM_SUBJECT,
    NOTICE_SUBJECT,
    PASSWORD,
    bearer_token,
    change_token,
    confirmed_user,
    execute,
    hidden_field,
    mails_about,
    rows,
    sign_in_form,
)
from tests.support.mailhog import MailHog

NEW = "ada@new.example.com"


async def ask_change(
    http: httpx.AsyncClient, bearer: str, email: str, password: str = PASSWORD
) -> httpx.Response:
    return await http.post(
        "/api/me/email",
        json={"email": email, "password": password},
        headers={"Authorization": f"Bearer {bearer}"},
    )


async def press(http: httpx.AsyncClient, purpose: str, token: str) -> httpx.Response:
    """Open the link and press its button, as a person does."""
    page = await http.get(f"/email/{purpose}", params={"token": token})
    assert page.status_code == 200, page.text
    form = {"token": token, "csrf_token": hidden_field(page.text, "csrf_token")}
    return await http.post(f"/email/{purpose}", data=form)


async def email_of(engine: AsyncEngine, username: str) -> str:
    [user] = await rows(engine, "SELECT email FROM users WHERE username = :u", u=username)
    return str(user["email"])


async def test_change_confirm_then_revert_through_uvicorn(
    settings: Settings, engine: AsyncEngine, mailhog: MailHog
) -> None:
    with AppProcess(settings) as app:
        async with httpx.AsyncClient(base_url=app.url, timeout=30) as http:
            await confirmed_user(http, engine, "ada")
            await sign_in_form(http, "ada")
            old_cookie = http.cookies["session"]
            bearer = await bearer_token(http, "ada")

            asked = await ask_change(http, bearer, NEW)
            assert asked.status_code == 202 and "Check the new address" in asked.json()["detail"]

            [confirm] = await mails_about(mailhog, CONFIRM_SUBJECT)
            [notice] = await mails_about(mailhog, NOTICE_SUBJECT)
            assert confirm.to == [NEW] and notice.to == ["ada@example.com"]
            confirm_token = change_token(confirm.part("text/plain"), "confirm")
            assert change_token(confirm.part("text/html"), "confirm") == confirm_token
            assert "for 24 hours" in confirm.part("text/plain")
            revert_token = change_token(notice.part("text/plain"), "revert")
            assert change_token(notice.part("text/html"), "revert") == revert_token
            assert "a***@new.example.com" in notice.part("text/plain")
            assert NEW not in notice.part("text/plain") and "for 7 days" in notice.part(
                "text/plain"
            )

            # Link scanners open both links, many times: nothing changes.
            for _ in range(3):
                page = await http.get("/email/confirm", params={"token": confirm_token})
                assert page.status_code == 200 and f"<strong>{NEW}</strong>" in page.text
                revert_page = await http.get("/email/revert", params={"token": revert_token})
                assert revert_page.status_code == 200
                assert "a***@new.example.com" in revert_page.text
            assert await email_of(engine, "ada") == "ada@example.com"
            unused = await rows(engine, "SELECT used_at FROM email_change_tokens")
            assert [t["used_at"] for t in unused] == [None, None]

            form = {"token": confirm_token, "csrf_token": hidden_field(page.text, "csrf_token")}
            done = await http.post("/email/confirm", data=form)
            assert done.status_code == 200 and "Your address is changed" in done.text
            assert await email_of(engine, "ada") == NEW
            # The link worked once.
            again = await http.post("/email/confirm", data=form)
            assert again.status_code == 400 and "no longer works" in again.text
            # Sessions live on; the username and the new address sign in, the old one not.
            assert (await http.get("/account")).status_code == 200
            async with httpx.AsyncClient(base_url=app.url, timeout=30) as other:
                assert (await sign_in_form(other, "ada")).status_code == 303
                assert (await sign_in_form(other, NEW.upper())).status_code == 303
                assert (await sign_in_form(other, "ada@example.com")).status_code == 401
                later_bearer = await bearer_token(other, NEW)

            undone = await press(http, "revert", revert_token)
            assert undone.status_code == 200 and "The change is undone" in undone.text
            assert await email_of(engine, "ada") == "ada@example.com"
            # Every session and token of the account is dead, old and new alike.
            for token in (bearer, later_bearer):
                me = await http.get("/api/me", headers={"Authorization": f"Bearer {token}"})
                assert me.status_code == 401
            assert http.cookies["session"] == old_cookie
            assert (await http.get("/account")).status_code == 303
            assert (await sign_in_form(http, "ada@example.com")).status_code == 303
            used = await http.get("/email/revert", params={"token": revert_token})
            assert used.status_code == 400 and "no longer works" in used.text

    audit = await wait_until(
        engine,
        "SELECT action, details FROM audit_log WHERE action LIKE 'email.change%' ORDER BY id",
        lambda found: len(found) == 3,
    )
    assert [a["action"] for a in audit] == [
        "email.change_requested",
        "email.change_confirmed",
        "email.change_reverted",
    ]
    assert audit[0]["details"] == {"channel": "api", "outcome": "queued"}
    assert audit[1]["details"]["email"] == NEW
    assert audit[2]["details"]["restored"] is True
    assert audit[2]["details"]["sessions_revoked"] >= 3


async def test_two_accounts_confirming_one_address_at_once_one_wins(
    settings: Settings, engine: AsyncEngine, mailhog: MailHog
) -> None:
    wanted = "shared@new.example.com"
    with AppProcess(settings) as app:
        async with (
            httpx.AsyncClient(base_url=app.url, timeout=60) as ada,
            httpx.AsyncClient(base_url=app.url, timeout=60) as bob,
        ):
            for http, name in ((ada, "ada"), (bob, "bob")):
                await confirmed_user(http, engine, name)
                answer = await ask_change(http, await bearer_token(http, name), wanted)
                assert answer.status_code == 202
            mails = await mails_about(mailhog, CONFIRM_SUBJECT, 2)
            tokens = [change_token(m.part("text/plain"), "confirm") for m in mails]
            pages = [
                await http.get("/email/confirm", params={"token": token})
                for http, token in zip((ada, bob), tokens, strict=True)
            ]
            forms = [
                {"token": token, "csrf_token": hidden_field(page.text, "csrf_token")}
                for token, page in zip(tokens, pages, strict=True)
            ]
            answers = await asyncio.gather(
                ada.post("/email/confirm", data=forms[0]),
                bob.post("/email/confirm", data=forms[1]),
            )
    assert sorted(a.status_code for a in answers) == [200, 409]
    [lost] = [a for a in answers if a.status_code == 409]
    assert "This address is taken" in lost.text
    holders = await rows(engine, "SELECT username FROM users WHERE email = :e", e=wanted)
    assert len(holders) == 1
    confirmed = await rows(engine, "SELECT id FROM email_changes WHERE confirmed_at IS NOT NULL")
    assert len(confirmed) == 1


async def test_an_address_of_another_account_gets_the_same_answer_and_only_its_owner_is_told(
    client: httpx.AsyncClient, engine: AsyncEngine, mailhog: MailHog
) -> None:
    await confirmed_user(client, engine, "ada")
    await confirmed_user(client, engine, "bob")
    bearer = await bearer_token(client, "ada")
    taken = await ask_change(client, bearer, "BOB@example.com")
    free = await ask_change(client, bearer, "nobody@example.com")
    assert taken.status_code == free.status_code == 202
    assert taken.json() == free.json()

    [notice] = await mails_about(mailhog, "someone tried to move an account")
    assert notice.to == ["bob@example.com"] and "/email/" not in notice.part("text/plain")
    assert await email_of(engine, "ada") == "ada@example.com"
    assert await email_of(engine, "bob") == "bob@example.com"
    # The one change row is the free address's: the taken one wrote none, and sent no link.
    changes = await rows(engine, "SELECT new_email FROM email_changes")
    assert changes == [{"new_email": "nobody@example.com"}]
    confirm_mails = await mails_about(mailhog, CONFIRM_SUBJECT)
    assert [m.to for m in confirm_mails] == [["nobody@example.com"]]
    audit = await wait_until(
        engine,
        "SELECT details FROM audit_log WHERE action = 'email.change_requested' ORDER BY id",
        lambda found: len(found) == 2,
    )
    assert [a["details"]["outcome"] for a in audit] == ["taken", "queued"]


async def test_a_newer_request_supersedes_the_older_link(
    client: httpx.AsyncClient, engine: AsyncEngine, mailhog: MailHog
) -> None:
    await confirmed_user(client, engine, "ada")
    bearer = await bearer_token(client, "ada")
    assert (await ask_change(client, bearer, "first@example.com")).status_code == 202
    [first] = await mails_about(mailhog, CONFIRM_SUBJECT)
    assert (await ask_change(client, bearer, "second@example.com")).status_code == 202
    mails = await mails_about(mailhog, CONFIRM_SUBJECT, 2)
    [second] = [m for m in mails if m.to == ["second@example.com"]]

    old = await client.get(
        "/email/confirm", params={"token": change_token(first.part("text/plain"), "confirm")}
    )
    assert old.status_code == 400 and "no longer works" in old.text
    done = await press(client, "confirm", change_token(second.part("text/plain"), "confirm"))
    assert done.status_code == 200
    assert await email_of(engine, "ada") == "second@example.com"


async def test_an_address_taken_meanwhile_gets_the_409_page_and_nothing_changes(
    client: httpx.AsyncClient, engine: AsyncEngine, mailhog: MailHog
) -> None:
    await confirmed_user(client, engine, "ada")
    bearer = await bearer_token(client, "ada")
    assert (await ask_change(client, bearer, NEW)).status_code == 202
    [confirm] = await mails_about(mailhog, CONFIRM_SUBJECT)
    [notice] = await mails_about(mailhog, NOTICE_SUBJECT)
    confirm_token = change_token(confirm.part("text/plain"), "confirm")
    revert_token = change_token(notice.part("text/plain"), "revert")

    # Someone registers the new address before ada confirms it.
    await confirmed_user(client, engine, "eve")
    await execute(engine, "UPDATE users SET email = :e WHERE username = 'eve'", e=NEW)
    taken = await press(client, "confirm", confirm_token)
    assert taken.status_code == 409 and "This address is taken" in taken.text
    assert await email_of(engine, "ada") == "ada@example.com"

    # Eve lets it go; ada confirms (the link is still unused), then eve takes ada's old one.
    await execute(engine, "UPDATE users SET email = 'eve@example.com' WHERE username = 'eve'")
    assert (await press(client, "confirm", confirm_token)).status_code == 200
    await execute(engine, "UPDATE users SET email = 'ada@example.com' WHERE username = 'eve'")
    blocked = await press(client, "revert", revert_token)
    assert blocked.status_code == 409 and "cannot be given back" in blocked.text
    # Nothing was undone: the address, the bearer token and the link are as they were.
    assert await email_of(engine, "ada") == NEW
    me = await client.get("/api/me", headers={"Authorization": f"Bearer {bearer}"})
    assert me.status_code == 200
    page = await client.get("/email/revert", params={"token": revert_token})
    assert page.status_code == 200
