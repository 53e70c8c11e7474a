"""The app's connection pool checks a pooled connection idle for a while before handing it
out: a live one is reused as it is, one that the database dropped is replaced, not handed
to a request. One used a moment ago is handed out unchecked; if the database dropped it
meanwhile, its statement fails (a 503 for a request, a retry for a job) and every
connection pooled before is discarded with it."""

import asyncio
from collections.abc import AsyncIterator

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine

from backend.db import PING_AFTER_IDLE_SECONDS, create_engine


async def _backend_pid(engine: AsyncEngine) -> int:
    async with engine.connect() as connection:
        pid = await connection.scalar(text("SELECT pg_backend_pid()"))
    assert isinstance(pid, int)
    return pid


@pytest.fixture
async def pool(database_url: str) -> AsyncIterator[AsyncEngine]:
    """A pool as the app makes it."""
    engine = create_engine(database_url)
    yield engine
    await engine.dispose()


async def test_a_live_pooled_connection_is_reused(pool: AsyncEngine) -> None:
    pids = [await _backend_pid(pool) for _ in range(5)]
    assert len(set(pids)) == 1  # the check passed each time: no reconnects


async def _pool_of_two(pool: AsyncEngine, admin: AsyncEngine) -> set[int]:
    """Two connections in the pool, then both ended by the server (as a restart would)."""
    async with pool.connect() as first, pool.connect() as second:
        old = {
            await first.scalar(text("SELECT pg_backend_pid()")),
            await second.scalar(text("SELECT pg_backend_pid()")),
        }
    async with admin.connect() as connection:
        await connection.execute(
            text("SELECT pg_terminate_backend(pid) FROM unnest(CAST(:p AS int[])) pid"),
            {"p": list(old)},
        )
    return old


async def test_idle_connections_the_database_dropped_are_replaced_before_use(
    pool: AsyncEngine, engine: AsyncEngine
) -> None:
    old = await _pool_of_two(pool, engine)
    await asyncio.sleep(PING_AFTER_IDLE_SECONDS + 0.1)

    new = {await _backend_pid(pool), await _backend_pid(pool)}
    assert not new & old


async def test_a_connection_dropped_just_after_use_fails_once_and_takes_the_pool_with_it(
    pool: AsyncEngine, engine: AsyncEngine
) -> None:
    old = await _pool_of_two(pool, engine)
    await asyncio.sleep(0.05)  # the server has ended them

    with pytest.raises(DBAPIError) as failed:
        await _backend_pid(pool)
    assert failed.value.connection_invalidated
    new = {await _backend_pid(pool), await _backend_pid(pool)}
    assert not new & old
