"""Under more registrations than the hashers can serve: the rest of the app still answers,
the excess is told at once to come back, and nothing is half-written."""

import asyncio
import contextlib
from collections.abc import AsyncIterator

import httpx
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from backend.settings import Settings
from tests.support.app_client import app_client
from tests.support.helpers import csrf_token, rows, user_json


async def test_past_the_queue_registrations_are_shed_at_once_and_nothing_is_half_written(
    settings: Settings, engine: AsyncEngine
) -> None:
    # One hasher and one place in the queue: of eight at once, two are let in.
    tight = settings.model_copy(update={"password_hash_workers": 1, "register_queue_limit": 1})
    finished: list[int] = []
    async with app_client(tight, wait_for_background=False) as client:

        async def register(i: int) -> httpx.Response:
            response = await client.post("/api/register", json=user_json(f"burst{i}"))
            finished.append(response.status_code)
            return response

        responses = await asyncio.gather(*(register(i) for i in range(8)))

    codes = sorted(r.status_code for r in responses)
    assert codes == [201, 201] + [503] * 6
    for response in responses:
        if response.status_code == 503:
            assert int(response.headers["retry-after"]) >= 1
    # Shed at once: every refusal was answered before either admitted hash was done.
    assert finished[:6] == [503] * 6
    users = await rows(engine, "SELECT username FROM users")
    assert len(users) == 2
    assert len(await rows(engine, "SELECT id FROM jobs WHERE kind = 'email.welcome'")) == 2


async def test_the_form_sheds_with_a_friendly_page(settings: Settings) -> None:
    tight = settings.model_copy(update={"password_hash_workers": 1, "register_queue_limit": 0})
    async with app_client(tight, wait_for_background=False) as client:
        token = csrf_token((await client.get("/register")).text)

        async def submit(i: int) -> httpx.Response:
            data = {"csrf_token": token, **user_json(f"form{i}")}
            return await client.post("/register", data=data)

        responses = await asyncio.gather(*(submit(i) for i in range(3)))

    busy = [r for r in responses if r.status_code == 503]
    assert len(busy) == 2
    assert all("try again" in r.text and "retry-after" in r.headers for r in busy)


@contextlib.asynccontextmanager
async def every_pooled_connection_taken(engine: AsyncEngine) -> AsyncIterator[None]:
    """Check out the app's whole pool (10 + 10 overflow) and hold it."""
    held: list[AsyncConnection] = []
    try:
        for _ in range(20):
            held.append(await engine.connect())
        yield
    finally:
        for connection in held:
            await connection.close()


async def test_health_answers_and_a_full_pool_is_a_503_not_a_500(settings: Settings) -> None:
    quick = settings.model_copy(update={"database_pool_timeout_seconds": 0.5})
    app = app_client(quick, wait_for_background=False)
    async with app as client, every_pooled_connection_taken(app.app.state.context.engine):
        health = await client.get("/healthz")
        alive = await client.get("/livez")
        registration = await client.post("/api/register", json=user_json("crowded"))
    assert health.status_code == 200  # its own connection, not the pool's
    assert alive.status_code == 200
    assert registration.status_code == 503 and registration.headers["retry-after"] == "5"


async def test_no_connection_is_held_while_a_hash_waits_its_turn(
    settings: Settings, engine: AsyncEngine
) -> None:
    # 30 registrations queue for one hasher: more than the pool's 20 connections. Were a
    # connection held across the hash (as a pre-check transaction would), the last ones
    # would wait past the pool timeout and get 503.
    queued = settings.model_copy(
        update={
            "password_hash_workers": 1,
            "register_queue_limit": 40,
            "database_pool_timeout_seconds": 0.5,
        }
    )
    async with app_client(queued, wait_for_background=False) as client:
        responses = await asyncio.gather(
            *(client.post("/api/register", json=user_json(f"patient{i}")) for i in range(30))
        )
    assert [r.status_code for r in responses] == [201] * 30
    assert len(await rows(engine, "SELECT id FROM users")) == 30
