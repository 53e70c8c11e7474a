"""The server-rendered form: success, every kind of error, CSRF."""

import re

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from backend.settings import Settings
from tests.support.app_client import app_client
from tests.support.helpers import PASSWORD, csrf_token, register_via_api, rows


async def _form(client: httpx.AsyncClient) -> str:
    response = await client.get("/register")
    assert response.status_code == 200
    return csrf_token(response.text)


async def _submit(client: httpx.AsyncClient, token: str, **fields: str) -> httpx.Response:
    return await client.post("/register", data={"csrf_token": token, **fields})


async def test_form_has_the_fields_and_accessible_labels(client: httpx.AsyncClient) -> None:
    html = (await client.get("/register")).text
    for name in ("username", "email", "password"):
        assert re.search(rf'<label for="{name}">', html)
        assert re.search(rf'<input id="{name}" name="{name}"', html)
    assert 'type="hidden" name="csrf_token"' in html
    assert "csrftoken" in client.cookies


async def test_successful_registration_redirects_to_confirmation(
    client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    token = await _form(client)
    response = await _submit(
        client, token, username="grace", email="grace@example.com", password=PASSWORD
    )

    assert response.status_code == 303
    assert response.headers["location"] == "/register/done"
    done = await client.get("/register/done")
    assert done.status_code == 200
    assert "grace@example.com" in done.text and "Welcome aboard, grace" in done.text
    [user] = await rows(engine, "SELECT username FROM users")
    assert user["username"] == "grace"


async def test_validation_errors_keep_values_but_never_the_password(
    client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    token = await _form(client)
    response = await _submit(
        client, token, username="g!", email="grace-at-example", password="tiny-pw"
    )

    assert response.status_code == 422
    html = response.text
    assert "Must be at least 3 characters" in html
    assert "Enter a valid email address" in html
    assert "Must be at least 8 characters" in html
    assert 'value="g!"' in html and 'value="grace-at-example"' in html
    assert "tiny-pw" not in html
    assert html.count('aria-invalid="true"') == 3
    assert await rows(engine, "SELECT id FROM users") == []


async def test_duplicate_is_409_with_a_message_on_the_field(client: httpx.AsyncClient) -> None:
    await register_via_api(client, "grace")
    token = await _form(client)
    response = await _submit(
        client, token, username="GRACE", email="other@example.com", password=PASSWORD
    )
    assert response.status_code == 409
    assert "This username is already taken" in response.text
    assert 'value="GRACE"' in response.text
    assert PASSWORD not in response.text


async def test_missing_fields_are_a_form_error_not_a_crash(client: httpx.AsyncClient) -> None:
    token = await _form(client)
    response = await _submit(client, token)
    assert response.status_code == 422
    assert response.text.count('class="field-error"') == 3


async def test_post_without_csrf_token_is_refused(
    client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    await _form(client)
    response = await client.post(
        "/register", data={"username": "mallory", "email": "m@example.com", "password": PASSWORD}
    )
    assert response.status_code == 403
    assert "did not come from this site" in response.text
    assert 'value="mallory"' in response.text
    assert await rows(engine, "SELECT id FROM users") == []


async def test_token_from_another_browser_is_refused(
    client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    token = await _form(client)
    client.cookies.clear()
    await client.get("/register")  # a new browser: a different cookie
    response = await _submit(
        client, token, username="mallory", email="m@example.com", password=PASSWORD
    )
    assert response.status_code == 403
    assert await rows(engine, "SELECT id FROM users") == []


async def test_forged_token_is_refused(client: httpx.AsyncClient) -> None:
    token = await _form(client)
    response = await _submit(
        client, token[:-4] + "AAAA", username="mallory", email="m@example.com", password=PASSWORD
    )
    assert response.status_code == 403


async def test_entered_values_are_escaped_when_shown_again(client: httpx.AsyncClient) -> None:
    token = await _form(client)
    attack = '"><script>alert(1)</script>'
    response = await _submit(client, token, username="ok_name", email=attack, password=PASSWORD)
    assert response.status_code == 422
    assert "<script>alert(1)</script>" not in response.text
    assert 'value="&#34;&gt;&lt;script&gt;alert(1)&lt;/script&gt;"' in response.text


@pytest.mark.parametrize(
    ("base_url", "secure"), [("https://app.example", True), ("http://x", False)]
)
async def test_cookies_are_secure_exactly_when_the_site_is_https(
    settings: Settings, base_url: str, secure: bool
) -> None:
    site = settings.model_copy(update={"app_base_url": base_url})
    async with app_client(site, base_url=base_url) as client:
        form = await client.get("/register")
        done = await _submit(
            client,
            csrf_token(form.text),
            username="cookie",
            email="cookie@example.com",
            password=PASSWORD,
        )
    assert done.status_code == 303  # the csrftoken cookie came back: same scheme rules
    for cookie in [form.headers["set-cookie"], done.headers["set-cookie"]]:
        assert "httponly" in cookie.lower() and "samesite=lax" in cookie.lower()
        assert ("secure" in cookie.lower().split("; ")) is secure
