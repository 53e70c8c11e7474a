"""The queue's figures for `GET /metrics`, read from the database when scraped.

Read, not counted: every process sees the same table, so the figures hold whatever the
number of workers or replicas, and survive restarts. One statement, one pass over the
table: its size is bounded by JOB_RETENTION_DAYS (succeeded jobs are purged after it).
A few seconds of cache and one read at a time per process keep a burst of scrapes (or
several Prometheus servers) from turning into a burst of scans; a short statement
timeout and an overall deadline keep a slow database from holding a scrape or a pooled
connection. A failed read is cached too, and answered as `None` (the page then says the
read failed instead of showing old figures as current).
"""

import asyncio
import logging
import time

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from backend.models import JOB_STATUSES
from backend.observability.metrics import QueueSnapshot

log = logging.getLogger(__name__)

# The oldest due job: pending with run_after passed. Its age counts from run_after (how
# long it has been waiting to be claimed), not from when it was queued: a retry that is
# not due yet is not late.
_READ = text(
    """
    SELECT kind, status, count(*) AS jobs,
           extract(epoch FROM now() - min(run_after)
                   FILTER (WHERE status = 'pending' AND run_after <= now())) AS oldest_due
    FROM jobs
    GROUP BY kind, status
    """
)


class QueueStats:
    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        *,
        max_age_seconds: float = 5.0,
        statement_timeout_ms: int = 1000,
        deadline_seconds: float = 2.0,
    ) -> None:
        self._sessionmaker = sessionmaker
        self._max_age = max_age_seconds
        self._statement_timeout_ms = statement_timeout_ms
        self._deadline = deadline_seconds
        self._lock = asyncio.Lock()
        self._read_at = -float("inf")
        self._snapshot: QueueSnapshot | None = None

    async def snapshot(self) -> QueueSnapshot | None:
        """The figures at most `max_age_seconds` old; None when the last read failed."""
        async with self._lock:  # concurrent scrapes wait for the one read in flight
            if time.monotonic() - self._read_at >= self._max_age:
                self._snapshot = await self._read_or_none()
                self._read_at = time.monotonic()
            return self._snapshot

    async def _read_or_none(self) -> QueueSnapshot | None:
        try:
            async with asyncio.timeout(self._deadline):
                return await self._read()
        except Exception as exc:
            log.warning("reading the job figures for /metrics failed: %r", exc)
            return None

    async def _read(self) -> QueueSnapshot:
        async with self._sessionmaker() as session, session.begin():
            # SET LOCAL: ends with this transaction, never left on the pooled connection.
            await session.execute(
                text(f"SET LOCAL statement_timeout = {int(self._statement_timeout_ms)}")
            )
            rows = (await session.execute(_READ)).all()
        jobs: dict[tuple[str, str], int] = {}
        oldest: dict[str, float] = {}
        for kind, status, count, oldest_due in rows:
            for state in JOB_STATUSES:
                jobs.setdefault((kind, state), 0)
            jobs[(kind, status)] = count
            oldest.setdefault(kind, 0.0)
            if oldest_due is not None:
                oldest[kind] = max(oldest[kind], float(oldest_due))
        return QueueSnapshot(jobs=jobs, oldest_due_seconds=oldest)
