"""Signing in with the form: the session cookie through a real uvicorn, the same answer
for an unknown account and a wrong password, unconfirmed addresses, CSRF on the form,
sign-out, expiry (absolute and idle), and the rehash of an older password hash."""

import hashlib

import httpx
from pwdlib import PasswordHash
from pwdlib.hashers.argon2 import Argon2Hasher
from sqlalchemy.ext.asyncio import AsyncEngine

from backend.devstack.app_process import AppProcess
from backend.settings import Settings
from tests.support.app_client import app_client
from tests.support.helpers import (
    PASSWORD,
    confirmed_user,
    csrf_token,
    execute,
    register_via_api,
    rows,
    sign_in_form,
)


async def test_sign_in_the_account_page_and_sign_out_through_uvicorn(
    settings: Settings, engine: AsyncEngine
) -> None:
    with AppProcess(settings) as app:
        async with httpx.AsyncClient(base_url=app.url, timeout=30) as http:
            await confirmed_user(http, engine, "ada")
            signed_in = await sign_in_form(http, "ADA@Example.com")
            assert signed_in.status_code == 303
            assert signed_in.headers["location"] == "/account"
            set_cookie = signed_in.headers["set-cookie"]
            assert set_cookie.startswith("session=")
            assert "HttpOnly" in set_cookie and "SameSite=lax" in set_cookie
            assert "Secure" not in set_cookie  # APP_BASE_URL is http here
            token = http.cookies["session"]

            account = await http.get("/account")
            assert account.status_code == 200
            assert "<strong>ada</strong>" in account.text and "ada@example.com" in account.text
            assert "Confirmed" in account.text

            # Only the token's hash is stored.
            [stored] = await rows(engine, "SELECT token_hash, kind, user_agent FROM sessions")
            assert stored["token_hash"] == hashlib.sha256(token.encode()).hexdigest()
            assert stored["kind"] == "browser" and stored["user_agent"].startswith("python-httpx")

            signed_out = await http.post("/logout", data={"csrf_token": csrf_token(account.text)})
            assert signed_out.status_code == 303 and signed_out.headers["location"] == "/login"
            assert "session" not in http.cookies
            assert (await http.get("/account")).headers["location"] == "/login"
            # The old cookie, replayed, opens nothing: the session was revoked.
            http.cookies.set("session", token)
            assert (await http.get("/account")).status_code == 303
            [revoked] = await rows(engine, "SELECT revoked_at FROM sessions")
            assert revoked["revoked_at"] is not None


async def test_unknown_account_and_wrong_password_get_the_same_page(
    client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    await confirmed_user(client, engine, "ada")
    wrong = await sign_in_form(client, "ada", "not the password")
    unknown = await sign_in_form(client, "nobody", "not the password")
    assert wrong.status_code == unknown.status_code == 401
    assert "Incorrect username, email or password." in wrong.text

    def without_token(page: str) -> str:
        return page.replace(csrf_token(page), "").replace("nobody", "ada")

    assert without_token(wrong.text) == without_token(unknown.text)
    assert "not the password" not in wrong.text  # never the password
    assert await rows(engine, "SELECT id FROM sessions") == []


async def test_an_unconfirmed_address_gets_a_link_to_the_resend_form(
    client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    await register_via_api(client, "ada")
    page = await sign_in_form(client, "ada")
    assert page.status_code == 403
    assert '<a href="/verify/resend">' in page.text
    assert "session" not in client.cookies
    assert await rows(engine, "SELECT id FROM sessions") == []


async def test_unconfirmed_addresses_may_sign_in_when_the_setting_says_so(
    settings: Settings, engine: AsyncEngine
) -> None:
    lenient = settings.model_copy(update={"signin_requires_verified_email": False})
    async with app_client(lenient) as client:
        await register_via_api(client, "ada")
        assert (await sign_in_form(client, "ada")).status_code == 303
        account = await client.get("/account")
    assert "Not confirmed yet" in account.text


async def test_the_login_form_needs_its_own_csrf_token(
    client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    await confirmed_user(client, engine, "ada")
    other_form = csrf_token((await client.get("/register")).text)
    for token in ["", "forged", other_form]:
        form = {"login": "ada", "password": PASSWORD, "csrf_token": token}
        refused = await client.post("/login", data=form)
        assert refused.status_code == 403, token
        assert "did not come from this site" in refused.text
    assert await rows(engine, "SELECT id FROM sessions") == []


async def test_the_account_page_sends_strangers_to_the_login_form(
    client: httpx.AsyncClient,
) -> None:
    response = await client.get("/account")
    assert response.status_code == 303 and response.headers["location"] == "/login"
    client.cookies.set("session", "made-up")
    assert (await client.get("/account")).status_code == 303
    # A sign-out without a session (or its form's token) is harmless.
    assert (await client.post("/logout", data={"csrf_token": "x"})).status_code == 303


async def test_a_sign_out_needs_the_account_pages_token(
    client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    await confirmed_user(client, engine, "ada")
    await sign_in_form(client, "ada")
    refused = await client.post("/logout", data={"csrf_token": "forged"})
    assert refused.status_code == 403
    assert (await client.get("/account")).status_code == 200  # still signed in


async def test_each_sign_in_gets_a_new_token_and_ends_the_previous_one(
    client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    await confirmed_user(client, engine, "ada")
    await sign_in_form(client, "ada")
    first = client.cookies["session"]
    await sign_in_form(client, "ada")
    second = client.cookies["session"]
    assert first != second
    sessions = await rows(engine, "SELECT revoked_at FROM sessions ORDER BY id")
    assert [s["revoked_at"] is not None for s in sessions] == [True, False]


async def test_secure_session_cookie_under_https(settings: Settings, engine: AsyncEngine) -> None:
    https = settings.model_copy(update={"app_base_url": "https://testserver"})
    async with app_client(https, base_url="https://testserver") as client:
        await confirmed_user(client, engine, "ada")
        signed_in = await sign_in_form(client, "ada")
        set_cookie = signed_in.headers["set-cookie"]
        assert set_cookie.startswith("__Host-session=")
        assert "Secure" in set_cookie and "HttpOnly" in set_cookie and "Path=/" in set_cookie
        assert (await client.get("/account")).status_code == 200


async def test_an_expired_or_idle_session_is_dead(
    client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    await confirmed_user(client, engine, "ada")
    await sign_in_form(client, "ada")
    assert (await client.get("/account")).status_code == 200

    await execute(engine, "UPDATE sessions SET last_seen_at = now() - interval '3 days'")
    assert (await client.get("/account")).status_code == 303  # idle past 2 days

    await sign_in_form(client, "ada")
    assert (await client.get("/account")).status_code == 200
    await execute(engine, "UPDATE sessions SET expires_at = now() - interval '1 second'")
    assert (await client.get("/account")).status_code == 303  # past its absolute expiry


async def test_last_seen_is_written_at_most_once_a_minute(
    client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    await confirmed_user(client, engine, "ada")
    await sign_in_form(client, "ada")
    for _ in range(3):
        assert (await client.get("/account")).status_code == 200
    [fresh] = await rows(engine, "SELECT created_at, last_seen_at FROM sessions")
    assert fresh["last_seen_at"] == fresh["created_at"]  # no write per request

    await execute(engine, "UPDATE sessions SET last_seen_at = now() - interval '2 minutes'")
    await client.get("/account")
    [touched] = await rows(engine, "SELECT last_seen_at, now() - last_seen_at AS age FROM sessions")
    assert touched["age"].total_seconds() < 60


async def test_a_hash_with_older_parameters_is_replaced_at_sign_in(
    client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    await confirmed_user(client, engine, "ada")
    weaker = PasswordHash((Argon2Hasher(time_cost=1, memory_cost=8192, parallelism=1),))
    old_hash = weaker.hash(PASSWORD)
    await execute(engine, "UPDATE users SET password_hash = :h", h=old_hash)

    assert (await sign_in_form(client, "ada")).status_code == 303

    [stored] = await rows(engine, "SELECT password_hash FROM users")
    assert stored["password_hash"] != old_hash
    assert "m=65536,t=3,p=1" in stored["password_hash"]
    # And the new hash still opens the account.
    assert (await sign_in_form(client, "ada")).status_code == 303
