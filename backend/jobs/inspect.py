"""Read-only views of the queue, for the CLI and for people."""

from collections.abc import Sequence

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from backend.models import JOB_STATUSES, Job


async def status_counts(session: AsyncSession) -> dict[str, int]:
    rows = await session.execute(select(Job.status, func.count()).group_by(Job.status))
    counts = dict.fromkeys(JOB_STATUSES, 0)
    counts.update({status: count for status, count in rows.tuples()})
    return counts


async def list_jobs(
    session: AsyncSession, *, statuses: Sequence[str], limit: int = 50
) -> list[Job]:
    """The newest jobs in these states, newest first."""
    result = await session.scalars(
        select(Job).where(Job.status.in_(statuses)).order_by(Job.id.desc()).limit(limit)
    )
    return list(result)
