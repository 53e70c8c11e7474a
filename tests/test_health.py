"""/livez answers while the process serves; /healthz answers 200 with a live database and 503
without one; a dead database is never a 500."""

import socket

import httpx
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from backend.settings import Settings
from tests.support.app_client import app_client
from tests.support.helpers import csrf_token, user_json


async def test_healthy(client: httpx.AsyncClient) -> None:
    response = await client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "database": "ok"}


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_database_down_is_503_everywhere(settings: Settings) -> None:
    dead = settings.model_copy(
        update={
            "database_url": f"postgresql+asyncpg://postgres@127.0.0.1:{_closed_port()}/nope",
            "job_worker_enabled": False,
        }
    )
    async with app_client(dead) as client:
        alive = await client.get("/livez")
        health = await client.get("/healthz")
        api = await client.post("/api/register", json=user_json("ada"))
        token = csrf_token((await client.get("/register")).text)
        form = await client.post("/register", data={"csrf_token": token, **user_json("ada")})

    assert alive.status_code == 200  # the process is fine: no reason to restart it
    assert health.status_code == 503 and health.json()["status"] == "unavailable"
    assert health.headers["retry-after"] == "5"
    assert api.status_code == 503 and api.headers["retry-after"] == "5"
    assert form.status_code == 503 and "Nothing you entered was saved" in form.text


async def test_a_connection_cut_by_the_database_is_no_false_alarm(
    client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    # The check keeps its connection open without pinging it first; a database restart
    # (here: the server ending that very session) must not make the next check say 503.
    assert (await client.get("/healthz")).status_code == 200
    async with engine.connect() as connection:
        ended = await connection.scalar(
            text(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid() "
                "AND query = 'SELECT 1'"
            )
        )
    assert ended and ended >= 1
    response = await client.get("/healthz")
    assert response.status_code == 200, response.text
