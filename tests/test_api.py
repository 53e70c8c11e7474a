"""POST /api/register: 201 with the user, 409 on duplicates (any case), 422 on bad input."""

import asyncio
import uuid

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from backend.settings import Settings
from tests.support.app_client import app_client
from tests.support.helpers import PASSWORD, csrf_token, register_via_api, rows, user_json


async def test_created_user_is_returned_without_secrets(
    client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    response = await client.post("/api/register", json=user_json("Ada", "Ada@Example.COM"))

    assert response.status_code == 201
    body = response.json()
    assert set(body) == {"id", "username", "email", "created_at", "email_verified_at"}
    assert body["username"] == "Ada"
    assert body["email"] == "Ada@example.com"  # the domain part is normalised
    assert body["email_verified_at"] is None
    assert PASSWORD not in response.text and "argon2" not in response.text
    [stored] = await rows(engine, "SELECT * FROM users")
    assert stored["id"] == uuid.UUID(body["id"])
    assert stored["password_hash"].startswith("$argon2id$")
    assert PASSWORD not in stored["password_hash"]


@pytest.mark.parametrize(
    ("second", "field"),
    [
        (user_json("ADA", "someone.else@example.com"), "username"),
        (user_json("grace", "ADA@EXAMPLE.COM"), "email"),
    ],
)
async def test_duplicates_are_409_whatever_the_case(
    client: httpx.AsyncClient, engine: AsyncEngine, second: dict[str, str], field: str
) -> None:
    await register_via_api(client, "ada")

    response = await client.post("/api/register", json=second)

    assert response.status_code == 409
    [error] = response.json()["detail"]
    assert error["loc"] == ["body", field]
    assert error["type"] == "conflict"
    assert len(await rows(engine, "SELECT id FROM users")) == 1


async def test_both_fields_taken_are_both_reported(client: httpx.AsyncClient) -> None:
    await register_via_api(client, "ada")
    response = await client.post("/api/register", json=user_json("Ada", "ADA@example.com"))
    assert response.status_code == 409
    assert {tuple(e["loc"]) for e in response.json()["detail"]} == {
        ("body", "username"),
        ("body", "email"),
    }


async def test_racing_registrations_cannot_both_win(
    client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    # Different case defeats nothing: the unique index on lower(username) decides.
    responses = await asyncio.gather(
        *(
            client.post("/api/register", json=user_json(name, f"{i}@example.com"))
            for i, name in enumerate(["racer", "RACER", "Racer", "rAcEr"])
        )
    )
    assert sorted(r.status_code for r in responses) == [201, 409, 409, 409]
    assert len(await rows(engine, "SELECT id FROM users")) == 1
    # The losers left no background work behind either.
    assert len(await rows(engine, "SELECT id FROM jobs WHERE kind = 'email.welcome'")) == 1


@pytest.mark.parametrize(
    ("payload", "fields"),
    [
        (user_json("ab"), {"username"}),
        (user_json("x" * 33), {"username"}),
        (user_json("bad name!", "bad@example.com"), {"username"}),
        (user_json("ada", "not-an-email"), {"email"}),
        ({**user_json("ada"), "password": "short"}, {"password"}),
        ({**user_json("ada"), "password": "p" * 129}, {"password"}),
        ({"username": "ada"}, {"email", "password"}),
    ],
)
async def test_invalid_input_is_422_with_field_errors(
    client: httpx.AsyncClient, engine: AsyncEngine, payload: dict[str, str], fields: set[str]
) -> None:
    response = await client.post("/api/register", json=payload)

    assert response.status_code == 422
    detail = response.json()["detail"]
    assert {e["loc"][-1] for e in detail} == fields
    assert all("input" not in e for e in detail)  # a rejected password is never echoed
    assert await rows(engine, "SELECT id FROM users") == []


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(b"{not json", id="not-json"),
        # FastAPI's own answer to this was a 400 the document did not list (Schemathesis).
        pytest.param(b"\x80\x81", id="not-utf-8"),
    ],
)
async def test_an_unparsable_body_is_422_json_invalid(
    client: httpx.AsyncClient, body: bytes
) -> None:
    response = await client.post(
        "/api/register", content=body, headers={"content-type": "application/json"}
    )
    assert response.status_code == 422
    [error] = response.json()["detail"]
    assert error["type"] == "json_invalid" and error["loc"][0] == "body"


async def test_openapi_documents_every_answer(settings: Settings) -> None:
    documented = settings.model_copy(update={"api_docs_enabled": True})
    async with app_client(documented) as client:
        spec = (await client.get("/openapi.json")).json()
    register = spec["paths"]["/api/register"]["post"]["responses"]
    assert set(register) == {"201", "409", "422", "429", "503"}
    resend = spec["paths"]["/api/verification/resend"]["post"]["responses"]
    assert set(resend) == {"202", "422", "429", "503"}
    api_operations = [
        operation
        for path, operations in spec["paths"].items()
        if path.startswith("/api/")
        for operation in operations.values()
    ]
    for operation in api_operations:
        responses = operation["responses"]
        assert {"422", "429", "503"} <= set(responses)
        for code in ("429", "503"):
            assert "Retry-After" in responses[code]["headers"]
            assert responses[code]["content"]["application/json"]["schema"]
    health = spec["paths"]["/healthz"]["get"]["responses"]
    assert set(health) == {"200", "503"} and "Retry-After" in health["503"]["headers"]
    assert set(spec["paths"]["/livez"]["get"]["responses"]) == {"200"}


async def test_registration_attempts_are_rate_limited_per_client(
    settings: Settings, engine: AsyncEngine
) -> None:
    app = app_client(settings.model_copy(update={"register_rate_limit": "3/minute"}))
    async with app as a, app.new_client(("203.0.113.7", 1234)) as b:
        answers = [
            (await a.post("/api/register", json=user_json(f"burst{i}"))).status_code
            for i in range(3)
        ]
        limited = await a.post("/api/register", json=user_json("burst3"))
        token = csrf_token((await a.get("/register")).text)
        form = await a.post("/register", data={"csrf_token": token, **user_json("burst4")})
        # Another client, while the first is held back: its attempts are its own.
        other = [
            (await b.post("/api/register", json=user_json(f"other{i}"))).status_code
            for i in range(4)
        ]

    assert answers == [201, 201, 201]
    assert limited.status_code == 429 and int(limited.headers["retry-after"]) > 0
    assert form.status_code == 429 and "Too many attempts" in form.text
    assert 'value="burst4"' in form.text
    assert other == [201, 201, 201, 429]  # not limited by the first client; limited alike
    users = await rows(engine, "SELECT username FROM users ORDER BY username")
    names = [u["username"] for u in users]
    assert names == ["burst0", "burst1", "burst2", "other0", "other1", "other2"]
