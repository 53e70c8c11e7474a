"""SIGNIN_RATE_LIMIT, per client and per login: 429 with Retry-After, the same for a login
no account has (the refusal tells nobody who is registered), and a per-login count that
can be cleared (a completed password reset does, so a stranger cannot lock an owner out)."""

import httpx
from sqlalchemy.ext.asyncio import AsyncEngine

from backend.accounts.signin_limit import AccountSigninLimit
from backend.ratelimits import Limiter, PostgresCounter
from backend.settings import Settings
from tests.support.app_client import app_client
from tests.support.helpers import PASSWORD, confirmed_user, csrf_token

WRONG = {"password": "not the password"}


async def token_status(http: httpx.AsyncClient, login: str, password: str = "nope-nope") -> int:
    answer = await http.post("/api/token", data={"username": login, "password": password})
    if answer.status_code == 429:
        assert int(answer.headers["retry-after"]) >= 1
        assert answer.json() == {"detail": "Too many sign-in attempts. Please wait and try again."}
    return answer.status_code


async def test_past_the_limit_one_client_gets_429(settings: Settings) -> None:
    limited = settings.model_copy(update={"signin_rate_limit": "3/minute"})
    async with app_client(limited) as client:
        # Different logins: only the client's count is reached.
        statuses = [await token_status(client, f"user{i}") for i in range(4)]
        # The client's invalid bodies count too.
        invalid = await client.post("/api/token", json={})
    assert statuses == [401, 401, 401, 429]
    assert invalid.status_code == 429


async def test_past_the_limit_one_login_gets_429_from_any_client(
    settings: Settings, engine: AsyncEngine
) -> None:
    limited = settings.model_copy(update={"signin_rate_limit": "3/minute"})
    app = app_client(limited)
    async with app as setup:
        await confirmed_user(setup, engine, "ada")
        # Each client stays within its own count: only the login's is reached.
        clients = [app.new_client((f"127.0.0.{n}", 123)) for n in range(2, 7)]
        first, second, third, fourth, fifth = clients
        try:
            # An account, and a login nobody has: the same answers.
            for login, tries, then in (("ada", first, second), ("nobody", third, fourth)):
                assert [await token_status(tries, login) for _ in range(3)] == [401] * 3
                # Another client, the same login in another letter case: refused.
                assert await token_status(then, login.upper()) == 429
            # Even with the right password: the count is the login's, not the password's.
            assert await token_status(fifth, "ada", PASSWORD) == 429
            # Another login from that client goes through.
            assert await token_status(fifth, "grace") == 401
        finally:
            for client in clients:
                await client.aclose()


async def test_the_form_past_the_limit_shows_itself_again(settings: Settings) -> None:
    limited = settings.model_copy(update={"signin_rate_limit": "2/minute"})
    async with app_client(limited) as client:
        token = csrf_token((await client.get("/login")).text)
        form = {"login": "ada", "csrf_token": token, **WRONG}
        answers = [await client.post("/login", data=form) for _ in range(3)]
    assert [a.status_code for a in answers] == [401, 401, 429]
    refused = answers[-1]
    assert int(refused.headers["retry-after"]) >= 1
    assert "Too many sign-in attempts" in refused.text
    assert 'value="ada"' in refused.text and "not the password" not in refused.text


async def test_a_logins_count_can_be_cleared(settings: Settings, engine: AsyncEngine) -> None:
    limit = AccountSigninLimit(
        Limiter(
            name="signin-account",
            limit="2/hour",
            counter=PostgresCounter(engine),
            secret=settings.secret_key.get_secret_value(),
        )
    )
    assert [await limit.retry_after(login="Ada") for _ in range(2)] == [None, None]
    assert (await limit.retry_after(login="ada")) is not None
    assert (await limit.retry_after(login="ada@example.com")) is None

    await limit.clear(logins=["ada", "ada@example.com"])

    assert (await limit.retry_after(login="ADA")) is None
