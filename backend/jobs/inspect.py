"""Read-only views of the queue, for the CLI and for people."""

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from backend.models import JOB_STATUSES, Job


@dataclass(frozen=True)
class JobRow:
    id: int
    kind: str
    status: str
    attempts: int
    max_attempts: int
    run_after: datetime
    leased_until: datetime | None
    last_error: str | None
    created_at: datetime


async def status_counts(session: AsyncSession) -> dict[str, int]:
    rows = await session.execute(select(Job.status, func.count()).group_by(Job.status))
    counts = dict.fromkeys(JOB_STATUSES, 0)
    counts.update({status: count for status, count in rows.tuples()})
    return counts


async def list_jobs(
    session: AsyncSession, *, statuses: Sequence[str], limit: int = 50
) -> list[JobRow]:
    result = await session.scalars(
        select(Job).where(Job.status.in_(statuses)).order_by(Job.id.desc()).limit(limit)
    )
    return [
        JobRow(
            id=job.id,
            kind=job.kind,
            status=job.status,
            attempts=job.attempts,
            max_attempts=job.max_attempts,
            run_after=job.run_after,
            leased_until=job.leased_until,
            last_error=job.last_error,
            created_at=job.created_at,
        )
        for job in result
    ]
