"""Push wake-ups: work committed in one process wakes the pollers of all of them at once.

A transaction that makes a job due sends `NOTIFY jobs` with it (`outbox.notify_on_commit`):
Postgres delivers it only if that transaction commits, once however many jobs it queued.
Each process LISTENs on a connection of its own (a pooled one is handed to other work
between checkouts, and a LISTEN does not follow it) and wakes its poller, which claims
with `SKIP LOCKED` like any other claim: a job that the committing process's fast path
already took is skipped, and a burst of notifications coalesces into the poller's next
look (its wake-up is an `asyncio.Event`).

The timer poll stays underneath. When the listening connection drops (a database restart,
a failover) that is logged once, polling carries on alone, and the listener reconnects with
backoff; notifications sent meanwhile are lost, so every (re)connect is followed by one poll.
"""

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from backend.jobs.outbox import CHANNEL, backoff_seconds

log = logging.getLogger(__name__)


class WakeupListener:
    """LISTENs on `engine` (a connection of its own: see `db.create_listener_engine`) and
    calls `on_wake` for every notification, and once after every (re)connect."""

    def __init__(
        self,
        engine: AsyncEngine,
        *,
        reconnect_base_seconds: float = 1.0,
        reconnect_cap_seconds: float = 30.0,
        ping_seconds: float = 30.0,
    ) -> None:
        self._engine = engine
        self._reconnect_base = reconnect_base_seconds
        self._reconnect_cap = reconnect_cap_seconds
        # A connection that died without a word (a network partition, no FIN) is only
        # noticed by using it; the poll covers for it meanwhile.
        self._ping_seconds = ping_seconds
        self._task: asyncio.Task[None] | None = None
        self._failures = 0
        self._outage_logged = False

    def start(self, on_wake: Callable[[], None]) -> None:
        self._task = asyncio.create_task(self._listen_forever(on_wake), name="job-wakeups")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        await self._engine.dispose()

    async def _listen_forever(self, on_wake: Callable[[], None]) -> None:
        while True:
            try:
                await self._listen(on_wake)
                error = "the connection was lost"
            except Exception as exc:
                self._failures += 1
                error = repr(exc)
            if not self._outage_logged:  # once per outage, however many retries it takes
                log.warning("no job wake-ups (%s); polling until they are back", error)
                self._outage_logged = True
            await asyncio.sleep(
                backoff_seconds(
                    max(self._failures, 1), base=self._reconnect_base, cap=self._reconnect_cap
                )
            )

    async def _listen(self, on_wake: Callable[[], None]) -> None:
        """Listen until the connection is lost (returns) or cannot be made (raises)."""
        connection = await self._engine.connect()
        try:
            driver: Any = (await connection.get_raw_connection()).driver_connection
            lost = asyncio.Event()
            driver.add_termination_listener(lambda _connection: lost.set())
            await driver.add_listener(CHANNEL, lambda *_notification: on_wake())
            if self._outage_logged:
                log.info("job wake-ups are back")
                self._outage_logged = False
            self._failures = 0
            # Whatever was committed while nobody listened was not announced to us.
            on_wake()
            while not lost.is_set():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(lost.wait(), self._ping_seconds)
                    return
                try:
                    await driver.fetchval("SELECT 1", timeout=min(5.0, self._ping_seconds))
                except Exception:
                    return
        finally:
            await _discard(connection)


async def _discard(connection: AsyncConnection) -> None:
    # Invalidated, not closed: closing resets the session first, which on a dead
    # connection logs an error for nothing.
    with contextlib.suppress(Exception):
        await connection.invalidate()
    with contextlib.suppress(Exception):
        await connection.close()
