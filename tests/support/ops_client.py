"""The operator page driven as a test: the app in-process with the page on, a client
signed in to it, and what the tests read back."""

import contextlib
from collections.abc import AsyncIterator
from typing import Any

import httpx
from pydantic import SecretStr
from sqlalchemy.ext.asyncio import AsyncEngine

from backend.settings import Settings
from tests.support.app_client import app_client
from tests.support.helpers import rows
from tests.support.ops import OPS_AUTH, OPS_PASSWORD


def ops_settings(settings: Settings, **overrides: Any) -> Settings:
    return settings.model_copy(update={"ops_password": SecretStr(OPS_PASSWORD), **overrides})


@contextlib.asynccontextmanager
async def operator(settings: Settings, **overrides: Any) -> AsyncIterator[httpx.AsyncClient]:
    """The app with the operator page on, and a client signed in to it."""
    async with app_client(ops_settings(settings, **overrides)) as client:
        client.auth = OPS_AUTH
        yield client


async def page(client: httpx.AsyncClient, **params: str) -> str:
    response = await client.get("/ops/jobs", params=params)
    assert response.status_code == 200, response.text
    assert response.headers["cache-control"] == "no-store"
    return response.text


async def post(client: httpx.AsyncClient, action: str, fields: dict[str, str]) -> httpx.Response:
    return await client.post(f"/ops/jobs/{action}", data=fields)


async def audit_rows(engine: AsyncEngine, action: str) -> list[dict[str, Any]]:
    return await rows(
        engine, "SELECT job_id, details FROM audit_log WHERE action = :a ORDER BY job_id", a=action
    )


async def statuses(engine: AsyncEngine) -> dict[int, str]:
    return {r["id"]: r["status"] for r in await rows(engine, "SELECT id, status FROM jobs")}
