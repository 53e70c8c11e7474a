"""Retention: deleting (or stripping) old rows in short batches, by one process at a time.

The queue knows no feature: it purges its own finished jobs, and runs whatever other
`RetentionTask`s it is handed (`context.py` builds them: the audit log's personal data,
the accounts' dead sign-in rows). Each task deletes or updates at most `limit` rows per
call, in the caller's transaction, through an index that finds them without reading the
rest; a round calls each task until it does less than a full batch, with a short pause
between batches so that a backlog (the first round after an upgrade, months of rows)
never holds the database or its locks for long.

One process at a time: each batch first takes a transaction-level advisory lock
(`pg_try_advisory_xact_lock`), released by its commit. A process that does not get it
stops its round: another is purging. Transaction-level, not a session lock on a kept
connection, so that it also holds behind PgBouncer in transaction mode. The rows are
picked `FOR UPDATE SKIP LOCKED` as well, so a batch never waits on a row a worker holds.
"""

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

log = logging.getLogger(__name__)

# The advisory lock's key: any bigint no other part of the app uses ("retentio" in ASCII).
LOCK_KEY = 0x726574656E74696F
# Statuses in the SQL text, not parameters: only a literal status lets the planner prove
# the partial index's predicate (`ix_jobs_finished`) for a generic (prepared) plan too.
FINISHED = ("succeeded", "failed", "cancelled")


@dataclass(frozen=True)
class RetentionTask:
    """One kind of old row: `batch(session, limit)` deletes or strips at most `limit` of
    them in the session's transaction (the round commits it) and returns how many."""

    name: str
    batch: Callable[[AsyncSession, int], Awaitable[int]]


def finished_jobs(status: str, *, older_than_days: float) -> RetentionTask:
    """Jobs in `status` (succeeded, failed or cancelled) finished more than `older_than_days`
    ago, oldest first, through `ix_jobs_finished`. The audit log keeps the record of what
    happened; the job row is only the means."""
    if status not in FINISHED:
        raise ValueError(f"not a finished status: {status}")
    statement = text(purge_statement(status))

    async def batch(session: AsyncSession, limit: int) -> int:
        result = await session.execute(statement, {"age": older_than_days * 86400, "limit": limit})
        return int(result.rowcount)  # type: ignore[attr-defined]

    return RetentionTask(name=f"{status} jobs", batch=batch)


def purge_statement(status: str) -> str:
    # `= ANY(ARRAY(subquery))`: the picked ids are then deleted through the primary key;
    # with `IN (subquery)` the planner may hash-join them against a scan of the table.
    return (
        "DELETE FROM jobs WHERE id = ANY(ARRAY("
        f"SELECT id FROM jobs WHERE status = '{status}' "
        "AND finished_at < now() - make_interval(secs => :age) "
        "ORDER BY finished_at LIMIT :limit FOR UPDATE SKIP LOCKED))"
    )


class Retention:
    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        tasks: Sequence[RetentionTask],
        *,
        batch_size: int = 1000,
        pause_seconds: float = 0.2,
        statement_timeout_ms: int = 10_000,
    ) -> None:
        self._sessionmaker = sessionmaker
        self._tasks = tuple(tasks)
        self._batch_size = batch_size
        self._pause = pause_seconds
        self._statement_timeout_ms = statement_timeout_ms

    @property
    def tasks(self) -> tuple[RetentionTask, ...]:
        return self._tasks

    async def run_forever(self, *, first_after: tuple[float, float], every: float) -> None:
        """A round a random while (`first_after`, a range in seconds) after start-up, then
        every `every` seconds, until cancelled (a batch cut short is rolled back)."""
        await asyncio.sleep(random.uniform(*first_after))
        while True:
            started = time.monotonic()
            try:
                await self.run_round()
            except Exception:
                log.exception("retention round failed; the next one comes as scheduled")
            await asyncio.sleep(max(every - (time.monotonic() - started), 0.0))

    async def run_round(self) -> dict[str, int]:
        """Every task until it has nothing left; {task name: rows} of what this process did.
        Stops at once, keeping what it did so far, when another process holds the lock."""
        done = dict.fromkeys((task.name for task in self._tasks), 0)
        for task in self._tasks:
            while True:
                count = await self._one_batch(task)
                if count is None:
                    log.info("another process is running retention; this one stops its round")
                    return done
                done[task.name] += count
                if count < self._batch_size:
                    break
                await asyncio.sleep(self._pause)
        for name, count in done.items():
            if count:
                log.info("retention: %d %s", count, name)
        return done

    async def _one_batch(self, task: RetentionTask) -> int | None:
        async with self._sessionmaker() as session, session.begin():
            # SET LOCAL: ends with this transaction, never left on a pooled connection.
            await session.execute(
                text(f"SET LOCAL statement_timeout = {int(self._statement_timeout_ms)}")
            )
            locked = await session.scalar(
                text("SELECT pg_try_advisory_xact_lock(:key)"), {"key": LOCK_KEY}
            )
            if not locked:
                return None
            return await task.batch(session, self._batch_size)
