"""Push wake-ups: work committed by one process starts at once in another (LISTEN/NOTIFY),
and polling carries on when the listening connection is lost."""

import asyncio
import functools
import statistics
import time
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any

import asyncpg
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from backend.accounts.resend import request_verification_email
from backend.audit.job_kind import enqueue_audit
from backend.audit.service import record_job_actions
from backend.db import LISTENER_APPLICATION_NAME
from backend.devstack.app_process import AppProcess
from backend.devstack.postgres import asyncpg_dsn
from backend.jobs import admin
from backend.jobs.outbox import CHANNEL
from backend.settings import Settings
from tests.support.app_client import app_client
from tests.support.durability import queue_registrations, wait_until
from tests.support.helpers import mail_limit, rows

# The bound: committed in one process, started in another within this.
WITHIN_SECONDS = 0.1
# Long enough that only a notification explains a job starting within the test.
NO_POLL = {"job_poll_seconds": 30.0}

_LISTENERS = (
    "SELECT pid, backend_start FROM pg_stat_activity "
    "WHERE datname = current_database() AND application_name = :name AND query LIKE 'LISTEN %'"
)


async def _listeners(engine: AsyncEngine) -> list[dict[str, Any]]:
    return await rows(engine, _LISTENERS, name=LISTENER_APPLICATION_NAME)


async def _listening(engine: AsyncEngine, *, besides: int | None = None) -> dict[str, Any]:
    """Wait until one process listens (another than the `besides` pid); returns its row."""
    [listener] = await wait_until(
        engine,
        _LISTENERS + " AND pid IS DISTINCT FROM :besides",
        lambda found: len(found) == 1,
        name=LISTENER_APPLICATION_NAME,
        besides=besides,
    )
    return listener


async def _commit_audit_job(sessions: async_sessionmaker[AsyncSession], n: int) -> datetime:
    """Queue a job as the app does, from this process (which runs no worker); returns the
    database's clock just before the COMMIT."""
    async with sessions() as session:
        enqueue_audit(session, action="test.woken", user_id=None, details={"n": n})
        committing: datetime = await session.scalar(text("SELECT clock_timestamp()"))
        await session.commit()
    return committing


async def _finished(engine: AsyncEngine, n: int, *, within: float = 10.0) -> datetime:
    [job] = await wait_until(
        engine,
        "SELECT finished_at FROM jobs WHERE payload->'details'->>'n' = :n AND status = 'succeeded'",
        lambda found: len(found) == 1,
        n=str(n),
        within=within,
    )
    finished: datetime = job["finished_at"]
    return finished


@pytest.fixture
def sessions(engine: AsyncEngine, clean: None) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False)


@pytest.fixture
async def notifications(database_url: str) -> AsyncIterator[asyncio.Queue[str]]:
    """What a listener on the jobs channel receives."""
    received: asyncio.Queue[str] = asyncio.Queue()
    connection = await asyncpg.connect(asyncpg_dsn(database_url))
    await connection.add_listener(CHANNEL, lambda *args: received.put_nowait(args[3]))
    yield received
    await connection.close()


async def _drained(received: asyncio.Queue[str]) -> list[str]:
    await asyncio.sleep(0.3)  # delivery is asynchronous; give it time to arrive
    found = []
    while not received.empty():
        found.append(received.get_nowait())
    return found


async def test_a_commit_notifies_once_and_a_rollback_not_at_all(
    settings: Settings,
    engine: AsyncEngine,
    sessions: async_sessionmaker[AsyncSession],
    notifications: asyncio.Queue[str],
) -> None:
    async with sessions() as session:
        enqueue_audit(session, action="test.rolled_back", user_id=None)
        await session.flush()
        await session.rollback()
        # Nothing queued after the rollback: its commit must not notify either.
        await session.commit()
    assert await _drained(notifications) == []

    async with sessions() as session:
        for n in range(3):
            enqueue_audit(session, action="test.many", user_id=None, details={"n": n})
        await session.commit()
    assert await _drained(notifications) == [""]  # one per transaction, kind-agnostic

    await queue_registrations(engine, settings, 1)
    assert await _drained(notifications) == [""]


async def test_a_resend_notifies_only_when_it_queues(
    settings: Settings,
    engine: AsyncEngine,
    sessions: async_sessionmaker[AsyncSession],
    notifications: asyncio.Queue[str],
) -> None:
    await queue_registrations(engine, settings, 1)
    await _drained(notifications)
    for email, queued in [("nobody@example.com", False), ("user0000@example.com", True)]:
        async with sessions() as session:
            requested = await request_verification_email(
                session,
                email=email,
                channel="api",
                sender_address=settings.mail_from,
                mail_limit=mail_limit(engine, settings),
            )
        assert bool(requested.job_ids) is queued
        assert await _drained(notifications) == ([""] if queued else [])


async def test_an_operator_retry_notifies(
    engine: AsyncEngine,
    sessions: async_sessionmaker[AsyncSession],
    notifications: asyncio.Queue[str],
) -> None:
    async with engine.begin() as connection:
        await connection.execute(
            text("INSERT INTO jobs (kind, payload, status) VALUES ('audit.write', '{}', 'failed')")
        )
    retry = functools.partial(admin.retry, by="test", record=record_job_actions)
    async with sessions() as session:
        assert await retry(session, statuses=["pending"]) == []
        await session.commit()
    assert await _drained(notifications) == []
    async with sessions() as session:
        assert len(await retry(session, statuses=["failed"])) == 1
        await session.commit()
    assert await _drained(notifications) == [""]


async def test_work_committed_in_one_process_starts_in_another_at_once(
    settings: Settings, engine: AsyncEngine, sessions: async_sessionmaker[AsyncSession]
) -> None:
    # This process commits (no worker, no fast path); the app process runs the jobs, and
    # polls only every 30 s: only the notification can start them sooner.
    with AppProcess(settings.model_copy(update=NO_POLL)):
        await _listening(engine)
        # One job first: what a process does once (its recorder connects) is not timed.
        await _commit_audit_job(sessions, 0)
        await _finished(engine, 0)
        delays = []
        for n in range(1, 8):
            committing = await _commit_audit_job(sessions, n)
            delays.append((await _finished(engine, n) - committing).total_seconds())
            await asyncio.sleep(0.2)
        # A registration, as a request makes it: the welcome email and the audit row.
        await queue_registrations(engine, settings, 1)
        [registration] = await wait_until(
            engine,
            "SELECT count(*) AS done, max(finished_at) - min(created_at) AS took FROM jobs "
            "WHERE status = 'succeeded' AND payload->>'user_id' IS NOT NULL",
            lambda found: found[0]["done"] == 2,
        )
    # Done (claimed, run and recorded), not only started: every one long before the 30 s
    # poll, and typically within the bound. The median, because on a loaded 2-core
    # machine one sample can lose the CPU for longer than the bound itself.
    assert max(delays) < 1, delays
    assert statistics.median(delays) < WITHIN_SECONDS, delays
    # From its transaction's start to both jobs done, the email sent: not the 30 s poll
    # (typically tens of milliseconds; the margin is for a loaded machine).
    assert registration["took"].total_seconds() < 5


async def test_the_listener_comes_back_and_catches_up(
    settings: Settings, engine: AsyncEngine, sessions: async_sessionmaker[AsyncSession]
) -> None:
    with AppProcess(settings.model_copy(update=NO_POLL)) as app:
        first = await _listening(engine)
        await rows(engine, "SELECT pg_terminate_backend(:pid)", pid=first["pid"])
        # Committed while nobody listens: lost to the notification, found by the look
        # that follows the reconnection.
        await _commit_audit_job(sessions, 1)
        second = await _listening(engine, besides=first["pid"])
        await _finished(engine, 1, within=5)
        committing = await _commit_audit_job(sessions, 2)
        delay = (await _finished(engine, 2) - committing).total_seconds()
        log = app.log()
    assert delay < 1  # woken again, not polled: the poll is 30 s away
    assert second["backend_start"] > first["backend_start"]
    assert log.count("no job wake-ups") == 1
    assert log.count("job wake-ups are back") == 1


async def test_polling_carries_on_while_the_listener_is_down(
    settings: Settings, engine: AsyncEngine, sessions: async_sessionmaker[AsyncSession]
) -> None:
    with AppProcess(settings.model_copy(update={"job_poll_seconds": 0.2})) as app:
        first = await _listening(engine)
        await rows(engine, "SELECT pg_terminate_backend(:pid)", pid=first["pid"])
        deadline = time.monotonic() + 5
        while "no job wake-ups" not in app.log():
            assert time.monotonic() < deadline, app.log_tail()
            await asyncio.sleep(0.01)
        await _commit_audit_job(sessions, 1)
        finished = await _finished(engine, 1)
        second = await _listening(engine, besides=first["pid"])
    # Run by the poll alone: done before the listener was back (it waits a second or so).
    assert finished < second["backend_start"]


async def test_job_notify_off_listens_to_nothing(settings: Settings, engine: AsyncEngine) -> None:
    async with app_client(settings.model_copy(update={"job_notify": False})):
        await asyncio.sleep(0.5)
        assert await _listeners(engine) == []
    async with app_client(settings):
        await _listening(engine)
