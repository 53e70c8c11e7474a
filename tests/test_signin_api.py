"""Signing in for programs: POST /api/token (OAuth2 password flow), GET /api/me and
POST /api/logout with an opaque bearer token, through a real uvicorn; the same 401 for an
unknown account and a wrong password; 403 for an unconfirmed address; bad bodies 422."""

import hashlib

import httpx
from sqlalchemy.ext.asyncio import AsyncEngine

from backend.devstack.app_process import AppProcess
from backend.settings import Settings
from tests.support.helpers import (
    PASSWORD,
    bearer_token,
    confirmed_user,
    execute,
    register_via_api,
    rows,
    sign_in_form,
)


async def test_token_me_and_logout_through_uvicorn(settings: Settings, engine: AsyncEngine) -> None:
    with AppProcess(settings) as app:
        async with httpx.AsyncClient(base_url=app.url, timeout=30) as http:
            user = await confirmed_user(http, engine, "ada")
            answer = await http.post(
                "/api/token", data={"username": "ADA@example.com", "password": PASSWORD}
            )
            assert answer.status_code == 200, answer.text
            issued = answer.json()
            assert issued["token_type"] == "bearer" and issued["expires_in"] == 3600
            token = issued["access_token"]
            auth = {"Authorization": f"Bearer {token}"}

            me = await http.get("/api/me", headers=auth)
            assert me.status_code == 200
            assert me.json() == {**user, "email_verified_at": me.json()["email_verified_at"]}
            assert me.json()["email_verified_at"] is not None
            [stored] = await rows(engine, "SELECT token_hash, kind FROM sessions")
            assert stored == {
                "token_hash": hashlib.sha256(token.encode()).hexdigest(),
                "kind": "bearer",
            }

            assert (await http.post("/api/logout", headers=auth)).status_code == 204
            after = await http.get("/api/me", headers=auth)
            assert after.status_code == 401
            assert after.headers["www-authenticate"] == "Bearer"
            assert (await http.post("/api/logout", headers=auth)).status_code == 401


async def test_unknown_account_and_wrong_password_get_the_same_401(
    client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    await confirmed_user(client, engine, "ada")
    wrong = await client.post("/api/token", data={"username": "ada", "password": "nope-nope"})
    unknown = await client.post("/api/token", data={"username": "bob", "password": "nope-nope"})
    for answer in (wrong, unknown):
        assert answer.status_code == 401
        assert answer.json() == {"detail": "Incorrect username or password"}
        assert answer.headers["www-authenticate"] == "Bearer"
    assert await rows(engine, "SELECT id FROM sessions") == []


async def test_an_unconfirmed_address_gets_403_pointing_to_the_resend(
    client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    await register_via_api(client, "ada")
    answer = await client.post("/api/token", data={"username": "ada", "password": PASSWORD})
    assert answer.status_code == 403
    assert "POST /api/verification/resend" in answer.json()["detail"]
    assert await rows(engine, "SELECT id FROM sessions") == []


async def test_bad_bodies_get_422_never_a_500(client: httpx.AsyncClient) -> None:
    as_json = await client.post("/api/token", json={"username": "ada", "password": PASSWORD})
    assert as_json.status_code == 422, as_json.text
    assert (await client.post("/api/token")).status_code == 422
    missing = await client.post("/api/token", data={"username": "ada"})
    assert missing.status_code == 422
    assert PASSWORD not in as_json.text
    # A login no account could have (Postgres text holds no NUL byte): the usual 401.
    for login in ("ada\x00", "a" * 5000):
        odd = await client.post("/api/token", data={"username": login, "password": "nope-nope"})
        assert odd.status_code == 401, login


async def test_missing_forged_or_expired_tokens_get_401(
    client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    await confirmed_user(client, engine, "ada")
    assert (await client.get("/api/me")).status_code == 401
    for header in ("Bearer made-up", "Bearer " + "a" * 5000, "Basic YWRhOnB3"):
        answer = await client.get("/api/me", headers={"Authorization": header})
        assert answer.status_code == 401, header
    token = await bearer_token(client, "ada")
    auth = {"Authorization": f"Bearer {token}"}
    assert (await client.get("/api/me", headers=auth)).status_code == 200
    await execute(engine, "UPDATE sessions SET expires_at = now() - interval '1 second'")
    assert (await client.get("/api/me", headers=auth)).status_code == 401


async def test_a_browser_session_is_no_bearer_token_and_back(
    client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    await confirmed_user(client, engine, "ada")
    await sign_in_form(client, "ada")
    cookie = client.cookies["session"]
    as_bearer = await client.get("/api/me", headers={"Authorization": f"Bearer {cookie}"})
    assert as_bearer.status_code == 401
    token = await bearer_token(client, "ada")
    client.cookies.set("session", token)
    assert (await client.get("/account")).status_code == 303
