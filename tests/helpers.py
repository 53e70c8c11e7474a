"""Small helpers the tests share."""

import re
from typing import Any

import httpx
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

PASSWORD = "correct horse battery"


def user_json(username: str = "ada", email: str | None = None, **extra: Any) -> dict[str, Any]:
    return {
        "username": username,
        "email": email or f"{username.lower()}@example.com",
        "password": PASSWORD,
        **extra,
    }


async def register_via_api(client: httpx.AsyncClient, username: str = "ada", **kw: Any) -> Any:
    response = await client.post("/api/register", json=user_json(username, **kw))
    assert response.status_code == 201, response.text
    return response.json()


async def rows(engine: AsyncEngine, sql: str, **params: Any) -> list[dict[str, Any]]:
    async with engine.connect() as connection:
        result = await connection.execute(text(sql), params)
        return [dict(row._mapping) for row in result]


def csrf_token(html: str) -> str:
    match = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert match, "no csrf_token field in the form"
    return match.group(1)


def verify_link(body: str) -> str:
    match = re.search(r"http://testserver/verify\?token=[A-Za-z0-9_.\-]+", body)
    assert match, f"no verification link in: {body!r}"
    return match.group(0)
