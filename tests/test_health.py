"""/livez answers while the process serves; /healthz answers 200 with a live database and 503
without one; a dead database is never a 500."""

import socket

import httpx

from backend.settings import Settings
from tests.conftest import app_client
from tests.helpers import csrf_token, user_json


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
