"""Helpers for the durability tests: waiting on job states, queuing registrations directly."""

import asyncio
import time
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker

from backend.accounts.schemas import RegistrationIn
from backend.accounts.service import register
from backend.settings import Settings
from tests.helpers import PASSWORD, rows
from tests.support.smtp_proxy import SmtpProxy


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
                max_attempts=settings.job_max_attempts,
            )
