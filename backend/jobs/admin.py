"""The queue seen and steered by people: counts, listings, retries (the CLI uses these)."""

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from backend.jobs.outbox import notify_on_commit
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


async def retry(
    session: AsyncSession,
    *,
    job_id: int | None = None,
    status: str = "failed",
    kind: str | None = None,
    since: datetime | None = None,
) -> list[Job]:
    """Operator action, in the caller's transaction: make the matching jobs due now, with a
    fresh give-up age (it counts from now) and fresh backoff. Returns the jobs retried.

    Only finished-for-good or waiting jobs can be retried (`failed` or `pending`): a
    running job belongs to its worker.
    """
    if status not in ("failed", "pending"):
        raise ValueError("only failed or pending jobs can be retried")
    query = (
        update(Job)
        .where(Job.status == status)
        .values(
            status="pending",
            attempts=0,
            run_after=func.now(),
            retried_at=func.now(),
            finished_at=None,
        )
        .returning(Job)
    )
    if job_id is not None:
        query = query.where(Job.id == job_id)
    if kind is not None:
        query = query.where(Job.kind == kind)
    if since is not None:
        query = query.where(Job.created_at >= since)
    retried = list(await session.scalars(query))
    if retried:
        notify_on_commit(session)  # running apps take them at once, not at their next poll
    return retried
