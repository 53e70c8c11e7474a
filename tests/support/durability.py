"""Helpers for the durability tests: waiting on job states, queuing registrations directly."""

import asyncio
import contextlib
import time
from collections import Counter
from collections.abc import AsyncIterator
from typing import Any

import httpx
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker

from backend.accounts.passwords import PasswordHasher
from backend.accounts.schemas import RegistrationIn
from backend.accounts.service import register
from backend.context import AppContext
from backend.devstack.smtp_proxy import SmtpProxy
from backend.jobs import claims
from backend.jobs.outbox import ClaimedJob
from backend.settings import Settings
from tests.support.helpers import PASSWORD, mail_limit, rows
from tests.support.mailhog import Delivered

# For registrations made straight through the service, as a request would make them.
HASHER = PasswordHasher(queue_limit=1000)


def through_proxy(settings: Settings, proxy: SmtpProxy, **overrides: object) -> Settings:
    """The same settings, with mail going through the outage proxy."""
    return settings.model_copy(
        update={"mail_server": "127.0.0.1", "mail_port": proxy.port, **overrides}
    )


async def wait_until(
    engine: AsyncEngine, sql: str, predicate: Any, *, within: float = 30.0, **params: Any
) -> list[dict[str, Any]]:
    """Poll a query until `predicate(rows)` holds; fail with the last rows if it never does."""
    deadline = time.monotonic() + within
    while True:
        found = await rows(engine, sql, **params)
        if predicate(found):
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"still not there after {within}s: {found}")
        await asyncio.sleep(0.1)


async def until_succeeded(engine: AsyncEngine, count: int, *, within: float = 30.0) -> None:
    """Wait until `count` jobs have succeeded."""
    await wait_until(
        engine,
        "SELECT id FROM jobs WHERE status = 'succeeded'",
        lambda found: len(found) == count,
        within=within,
    )


async def job_states(engine: AsyncEngine) -> dict[str, int]:
    found = await rows(engine, "SELECT status, count(*) AS n FROM jobs GROUP BY status")
    return {row["status"]: row["n"] for row in found}


async def queue_registrations(engine: AsyncEngine, settings: Settings, count: int) -> None:
    """Register users as a request would, minus the BackgroundTasks: a backlog of work."""
    sessions = async_sessionmaker(engine, expire_on_commit=False)
    for i in range(count):
        async with sessions() as session:
            await register(
                session,
                data=RegistrationIn(
                    username=f"user{i:04d}", email=f"user{i:04d}@example.com", password=PASSWORD
                ),
                channel="api",
                sender_address=settings.mail_from,
                smtputf8=settings.mail_smtputf8,
                hasher=HASHER,
                mail_limit=mail_limit(engine, settings),
            )


@contextlib.asynccontextmanager
async def refusing_inserts(engine: AsyncEngine, table: str) -> AsyncIterator[str]:
    """While inside, the database refuses every insert into `table` (a failure injected in
    the real database, not a mock); yields the error message it raises."""
    message = f"{table} unavailable"
    async with engine.begin() as connection:
        await connection.execute(
            text(
                "CREATE FUNCTION refuse_inserts() RETURNS trigger LANGUAGE plpgsql AS "
                f"$$ BEGIN RAISE EXCEPTION '{message}'; END $$"
            )
        )
        await connection.execute(
            text(
                f"CREATE TRIGGER refuse_inserts BEFORE INSERT ON {table} "
                "EXECUTE FUNCTION refuse_inserts()"
            )
        )
    try:
        yield message
    finally:
        async with engine.begin() as connection:
            await connection.execute(text(f"DROP TRIGGER refuse_inserts ON {table}"))
            await connection.execute(text("DROP FUNCTION refuse_inserts()"))


async def register_while_smtp_hangs(app_url: str, engine: AsyncEngine, username: str) -> None:
    """Register over HTTP, then wait until the welcome email is in flight: claimed,
    connected, waiting on the (paused) SMTP server."""
    async with httpx.AsyncClient(base_url=app_url, timeout=10) as client:
        response = await client.post(
            "/api/register",
            json={"username": username, "email": f"{username}@example.com", "password": PASSWORD},
        )
    assert response.status_code == 201
    await wait_until(
        engine,
        "SELECT id FROM jobs WHERE kind = 'email.welcome' AND status = 'running'",
        lambda found: len(found) == 1,
    )


async def claim_as_worker(
    engine: AsyncEngine, *, kinds: list[str], lease_seconds: float, limit: int = 10
) -> list[ClaimedJob]:
    """Claim due jobs as some other worker would (one that may then die holding them)."""
    async with async_sessionmaker(engine)() as session:
        return await claims.claim(
            session,
            lease_seconds=lease_seconds,
            limit=limit,
            known_kinds=kinds,
            ready_kinds=kinds,
            max_age_seconds=3600,
        )


async def queue_backlog(engine: AsyncEngine, count: int, *, prefix: str = "backlog") -> None:
    """A backlog of welcome emails as an outage leaves it, written straight in SQL (hashing
    hundreds of passwords would only slow the test down)."""
    async with engine.begin() as connection:
        await connection.execute(
            text(
                "INSERT INTO users (id, username, email, password_hash) "
                "SELECT gen_random_uuid(), :prefix || n, :prefix || n || '@example.com', 'x' "
                "FROM generate_series(1, :count) AS n"
            ),
            {"count": count, "prefix": prefix},
        )
        await connection.execute(
            text(
                "INSERT INTO jobs (kind, payload) "
                "SELECT 'email.welcome', jsonb_build_object('user_id', id::text, "
                "'message_id', '<' || username || '@welcome.test>') FROM users "
                "WHERE username LIKE :prefix || '%'"
            ),
            {"prefix": prefix},
        )


def duplicates(messages: list[Delivered]) -> int:
    """Copies beyond the first of each Message-ID, counted at the SMTP server."""
    ids = Counter(m.message_ids[0] for m in messages)
    return sum(n - 1 for n in ids.values())


async def drain_once(settings: Settings) -> int:
    """The app's background work, run until nothing is due, then stopped; how many ran."""
    context = AppContext.build(settings)
    try:
        return await context.runner.drain()
    finally:
        await context.close()
