"""The password reset, as a person goes through it: the forgot form, the email, the
link's page (which uses nothing up), the new password; through a real uvicorn, a real
Postgres and the inbox's API. Old sessions die, the link works once, and a reset asked
for while the relay is down arrives when it returns."""

import httpx
from sqlalchemy.ext.asyncio import AsyncEngine

from backend.devstack.app_process import AppProcess
from backend.devstack.smtp_proxy import SmtpProxy
from backend.settings import Settings
from tests.support.app_client import app_client
from tests.support.durability import through_proxy, wait_until
from tests.support.helpers import (
    PASSWORD,
    bearer_token,
    confirmed_user,
    csrf_token,
    hidden_field,
    mails_about,
    reset_token,
    rows,
    sign_in_form,
)
from tests.support.mailhog import MailHog

NEW_PASSWORD = "a brand new horse"


async def ask_for_reset(http: httpx.AsyncClient, email: str) -> httpx.Response:
    form = await http.get("/password/forgot")
    return await http.post(
        "/password/forgot", data={"email": email, "csrf_token": csrf_token(form.text)}
    )


async def test_forgot_email_link_and_new_password_through_uvicorn(
    settings: Settings, engine: AsyncEngine, mailhog: MailHog
) -> None:
    with AppProcess(settings) as app:
        async with httpx.AsyncClient(base_url=app.url, timeout=30) as http:
            await confirmed_user(http, engine, "ada")
            await sign_in_form(http, "ada")
            old_cookie = http.cookies["session"]
            old_bearer = {"Authorization": f"Bearer {await bearer_token(http, 'ada')}"}

            asked = await ask_for_reset(http, "ADA@example.com")
            assert asked.status_code == 200 and "Check your inbox" in asked.text

            [mail] = await mails_about(mailhog, "choose a new password")
            assert mail.to == ["ada@example.com"]
            token = reset_token(mail.part("text/plain"))
            assert reset_token(mail.part("text/html")) == token
            link = f"http://testserver/password/reset?token={token}"
            assert link in mail.part("text/plain") and link in mail.part("text/html")
            assert "for 1 hour" in mail.part("text/plain")

            # A link scanner opens it, many times: the form each time, nothing used up.
            for _ in range(3):
                page = await http.get("/password/reset", params={"token": token})
                assert page.status_code == 200
                assert "<strong>ada</strong>" in page.text and hidden_field(page.text, "token")
            [stored] = await rows(engine, "SELECT used_at FROM password_reset_tokens")
            assert stored["used_at"] is None

            form = {"token": token, "csrf_token": csrf_token(page.text)}
            done = await http.post("/password/reset", data={**form, "password": NEW_PASSWORD})
            assert done.status_code == 303 and done.headers["location"] == "/login?reset=done"
            assert "Your password was changed" in (await http.get("/login?reset=done")).text

            # Every session and token of the account is dead.
            http.cookies.set("session", old_cookie)
            assert (await http.get("/account")).status_code == 303
            assert (await http.get("/api/me", headers=old_bearer)).status_code == 401
            # The new password opens it, the old one does not.
            assert (await sign_in_form(http, "ada", PASSWORD)).status_code == 401
            assert (await sign_in_form(http, "ada", NEW_PASSWORD)).status_code == 303
            # The link worked once.
            again = await http.post("/password/reset", data={**form, "password": "yet another one"})
            assert again.status_code == 400 and "already used" in again.text
            assert (await sign_in_form(http, "ada", NEW_PASSWORD)).status_code == 303

    [changed] = await mails_about(mailhog, "your password was changed")
    assert changed.to == ["ada@example.com"]
    assert "/password/forgot" in changed.part("text/plain")
    audit = await wait_until(
        engine,
        "SELECT action, details FROM audit_log WHERE action LIKE '%password%' ORDER BY id",
        lambda found: len(found) == 2,
    )
    assert [a["action"] for a in audit] == [
        "user.password_reset_requested",
        "user.password_reset",
    ]
    assert audit[1]["details"]["sessions_revoked"] == 2


async def test_the_same_page_for_any_address_and_mail_only_for_an_account(
    client: httpx.AsyncClient, engine: AsyncEngine, mailhog: MailHog
) -> None:
    await confirmed_user(client, engine, "ada")
    known = await ask_for_reset(client, "ada@example.com")
    unknown = await ask_for_reset(client, "nobody@example.com")
    assert known.status_code == unknown.status_code == 200
    assert known.text.replace("ada@example.com", "X") == unknown.text.replace(
        "nobody@example.com", "X"
    )
    mails = await mailhog.wait_for(2)
    assert sorted(m.subject for m in mails) == [
        "Welcome, ada! Please confirm your email",
        "ada, choose a new password",
    ]
    assert await mailhog.to("nobody@example.com") == []


async def test_a_reset_asked_while_the_relay_is_down_arrives_when_it_returns(
    settings: Settings, proxy: SmtpProxy, engine: AsyncEngine, mailhog: MailHog
) -> None:
    async with app_client(through_proxy(settings, proxy)) as client:
        await confirmed_user(client, engine, "ada")
        await mails_about(mailhog, "Welcome")
        proxy.down()
        answer = await client.post("/api/password/forgot", json={"email": "ada@example.com"})
        assert answer.status_code == 202
        [held] = await rows(engine, "SELECT status FROM jobs WHERE kind = 'email.password_reset'")
        assert held["status"] == "pending"

        proxy.up()
        [mail] = await mails_about(mailhog, "choose a new password")
        token = reset_token(mail.part("text/plain"))
        # The link was made when the email went: its whole lifetime is still ahead.
        page = await client.get("/password/reset", params={"token": token})
        assert page.status_code == 200 and "Choose a new password" in page.text
        answer = await client.post(
            "/api/password/reset", json={"token": token, "password": NEW_PASSWORD}
        )
        assert answer.status_code == 204


async def test_an_expired_link_gets_a_friendly_page(
    settings: Settings, engine: AsyncEngine, mailhog: MailHog
) -> None:
    short_lived = settings.model_copy(update={"password_reset_token_ttl": 1})
    async with app_client(short_lived) as client:
        await confirmed_user(client, engine, "ada")
        await client.post("/api/password/forgot", json={"email": "ada@example.com"})
        [mail] = await mails_about(mailhog, "choose a new password")
        assert "for 1 second" in mail.part("text/plain")
        token = reset_token(mail.part("text/plain"))
        await wait_until(
            engine,
            "SELECT id FROM password_reset_tokens WHERE expires_at < now()",
            lambda found: len(found) == 1,
        )
        page = await client.get("/password/reset", params={"token": token})
        api = await client.post(
            "/api/password/reset", json={"token": token, "password": NEW_PASSWORD}
        )
    assert page.status_code == 400 and "This link has expired" in page.text
    assert '<a href="/password/forgot">Ask for a new link</a>' in page.text
    assert api.status_code == 400


async def test_forged_or_missing_links_get_the_friendly_page(client: httpx.AsyncClient) -> None:
    for params in ({"token": "not-a-token"}, {}, {"token": "a" * 5000}, {"token": "a\x00b"}):
        page = await client.get("/password/reset", params=params)
        assert page.status_code == 400, params
        assert "This link doesn't work" in page.text
    token = csrf_token((await client.get("/password/forgot")).text)
    posted = await client.post(
        "/password/reset", data={"token": "forged", "password": NEW_PASSWORD, "csrf_token": token}
    )
    assert posted.status_code in (400, 403)
    assert "doesn't work" in posted.text or "did not come from this site" in posted.text


async def test_a_weak_password_gets_the_registration_field_error_and_keeps_the_link(
    client: httpx.AsyncClient, engine: AsyncEngine, mailhog: MailHog
) -> None:
    await confirmed_user(client, engine, "ada")
    await client.post("/api/password/forgot", json={"email": "ada@example.com"})
    token = reset_token((await mails_about(mailhog, "choose a new password"))[0].part("text/plain"))

    api = await client.post("/api/password/reset", json={"token": token, "password": "short"})
    assert api.status_code == 422
    [error] = api.json()["detail"]
    assert error["loc"] == ["body", "password"] and error["type"] == "string_too_short"
    page = await client.get("/password/reset", params={"token": token})
    form = {"token": token, "csrf_token": csrf_token(page.text), "password": "short"}
    refused = await client.post("/password/reset", data=form)
    assert refused.status_code == 422
    assert 'aria-invalid="true"' in refused.text and 'id="password-error"' in refused.text

    [stored] = await rows(engine, "SELECT used_at FROM password_reset_tokens")
    assert stored["used_at"] is None
    assert (await sign_in_form(client, "ada", PASSWORD)).status_code == 303


async def test_the_forms_need_their_own_csrf_tokens(
    client: httpx.AsyncClient, engine: AsyncEngine, mailhog: MailHog
) -> None:
    await confirmed_user(client, engine, "ada")
    other_form = csrf_token((await client.get("/login")).text)
    for token in ["", "forged", other_form]:
        refused = await client.post(
            "/password/forgot", data={"email": "ada@example.com", "csrf_token": token}
        )
        assert refused.status_code == 403
    assert await rows(engine, "SELECT id FROM jobs WHERE kind = 'email.password_reset'") == []

    await client.post("/api/password/forgot", json={"email": "ada@example.com"})
    link = reset_token((await mails_about(mailhog, "choose a new password"))[0].part("text/plain"))
    refused = await client.post(
        "/password/reset", data={"token": link, "password": NEW_PASSWORD, "csrf_token": other_form}
    )
    assert refused.status_code == 403 and 'action="/password/reset"' in refused.text
    [stored] = await rows(engine, "SELECT used_at FROM password_reset_tokens")
    assert stored["used_at"] is None
