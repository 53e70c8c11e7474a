"""CSRF beyond the signed token: a token works on the form it came with only (the public
registration page's token does not open the operator's actions), the browser's own word
on where a post came from is heeded, and under https the cookie is `__Host-` prefixed."""

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from backend.devstack.sample_jobs import seed_jobs
from backend.settings import Settings
from tests.support.app_client import app_client
from tests.support.helpers import csrf_token, user_json
from tests.support.ops import OPS_AUTH
from tests.support.ops_client import ops_settings


async def register(client: httpx.AsyncClient, token: str, **headers: str) -> httpx.Response:
    return await client.post(
        "/register", data={"csrf_token": token, **user_json("ada")}, headers=headers
    )


async def test_a_token_works_on_its_own_form_only(settings: Settings, engine: AsyncEngine) -> None:
    ids = await seed_jobs(engine)
    async with app_client(ops_settings(settings, job_worker_enabled=False)) as client:
        registration = csrf_token((await client.get("/register")).text)
        resend = csrf_token((await client.get("/verify/resend")).text)
        client.auth = OPS_AUTH
        operator = csrf_token((await client.get("/ops/jobs", params={"state": "failed"})).text)
        fields = {"job_id": str(ids["failed"][0])}
        retried = await client.post("/ops/jobs/retry", data={"csrf_token": registration, **fields})
        resent = await client.post(
            "/verify/resend", data={"csrf_token": operator, "email": "ada@example.com"}
        )
        registered = await register(client, resend)
        assert (retried.status_code, resent.status_code, registered.status_code) == (403,) * 3
        assert (await register(client, registration)).status_code == 303


@pytest.mark.parametrize(
    "headers",
    [
        {"sec-fetch-site": "cross-site"},
        {"sec-fetch-site": "same-site"},
        {"origin": "https://evil.example"},
        {"origin": "http://testserver.evil.example"},
    ],
)
async def test_a_post_from_another_site_is_refused_even_with_a_good_token(
    client: httpx.AsyncClient, headers: dict[str, str]
) -> None:
    token = csrf_token((await client.get("/register")).text)
    refused = await register(client, token, **headers)
    assert refused.status_code == 403
    assert "did not come from this site" in refused.text


@pytest.mark.parametrize(
    "headers",
    [
        {"sec-fetch-site": "same-origin", "origin": "null"},  # our pages are no-referrer
        {"origin": "http://testserver"},
        {"sec-fetch-site": "none"},
        {},
    ],
)
async def test_a_post_from_this_site_goes_through(
    client: httpx.AsyncClient, headers: dict[str, str]
) -> None:
    token = csrf_token((await client.get("/register")).text)
    assert (await register(client, token, **headers)).status_code == 303


async def test_under_https_the_cookie_is_host_prefixed(settings: Settings) -> None:
    https = settings.model_copy(update={"app_base_url": "https://register.example"})
    async with app_client(https, base_url="https://register.example") as client:
        page = await client.get("/register")
        cookie = page.headers["set-cookie"]
        assert cookie.startswith("__Host-csrftoken=")
        assert "secure" in cookie.lower().split("; ") and "path=/" in cookie.lower()
        assert "domain=" not in cookie.lower()
        assert (await register(client, csrf_token(page.text))).status_code == 303
