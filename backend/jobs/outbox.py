"""The jobs table as a queue: record, claim, finish, retry, release.

A job is recorded in the same transaction as the change it follows, so it exists
exactly when that change does. Claims take a lease (`leased_until`) under
`FOR UPDATE SKIP LOCKED`, so any number of processes can share the table; a job
whose lease ran out (its process died) becomes claimable again. Finishing is
fenced by the lease token: a worker that lost its lease cannot overwrite the
outcome recorded by the one that took the job over.
"""

import random
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from backend.models import Job


@dataclass(frozen=True)
class ClaimedJob:
    id: int
    kind: str
    payload: dict[str, Any]
    attempts: int  # including this one
    max_attempts: int
    lease_token: uuid.UUID


def enqueue(session: AsyncSession, *, kind: str, payload: dict[str, Any], max_attempts: int) -> Job:
    """Add a job to the session's transaction; it commits (or not) with the caller's work."""
    job = Job(kind=kind, payload=payload, max_attempts=max_attempts)
    session.add(job)
    return job


_CLAIM = """
WITH picked AS (
    SELECT id FROM jobs
    WHERE ((status = 'pending' AND run_after <= now())
           OR (status = 'running' AND leased_until < now()))
          {only_ids}
    ORDER BY run_after, id
    LIMIT :limit
    FOR UPDATE SKIP LOCKED
)
UPDATE jobs
SET status = 'running',
    attempts = jobs.attempts + 1,
    lease_token = :token,
    leased_until = now() + make_interval(secs => :lease)
FROM picked
WHERE jobs.id = picked.id
RETURNING jobs.id, jobs.kind, jobs.payload, jobs.attempts, jobs.max_attempts
"""


async def claim(
    session: AsyncSession,
    *,
    lease_seconds: float,
    limit: int,
    ids: Sequence[int] | None = None,
) -> list[ClaimedJob]:
    """Lease up to `limit` claimable jobs (only among `ids` when given) and commit the lease."""
    token = uuid.uuid4()
    params: dict[str, Any] = {"limit": limit, "token": token, "lease": lease_seconds}
    only_ids = ""
    if ids is not None:
        only_ids = "AND id = ANY(:ids)"
        params["ids"] = list(ids)
    rows = await session.execute(text(_CLAIM.format(only_ids=only_ids)), params)
    claimed = [
        ClaimedJob(
            id=row.id,
            kind=row.kind,
            payload=row.payload,
            attempts=row.attempts,
            max_attempts=row.max_attempts,
            lease_token=token,
        )
        for row in rows
    ]
    await session.commit()
    return sorted(claimed, key=lambda job: job.id)


async def extend_leases(
    session: AsyncSession, *, jobs: Sequence[ClaimedJob], lease_seconds: float
) -> int:
    """Heartbeat: push the leases of jobs still being worked on; returns how many were ours."""
    result = await session.execute(
        text(
            "UPDATE jobs SET leased_until = now() + make_interval(secs => :lease) "
            "WHERE id = ANY(:ids) AND lease_token = :token AND status = 'running'"
        ),
        {"lease": lease_seconds, "ids": [j.id for j in jobs], "token": jobs[0].lease_token},
    )
    await session.commit()
    return result.rowcount  # type: ignore[attr-defined, no-any-return]


async def mark_succeeded(session: AsyncSession, jobs: Sequence[ClaimedJob]) -> set[int]:
    """In the caller's transaction; returns the ids still ours. A job whose lease was lost
    is left alone (its new owner records it), and nothing else should be written for it."""
    if not jobs:
        return set()
    result = await session.execute(
        text(
            "UPDATE jobs SET status = 'succeeded', finished_at = now(), last_error = NULL, "
            "lease_token = NULL, leased_until = NULL "
            "WHERE id = ANY(:ids) AND lease_token = :token AND status = 'running' RETURNING id"
        ),
        {"ids": [job.id for job in jobs], "token": jobs[0].lease_token},
    )
    return set(result.scalars())


async def mark_for_retry(
    session: AsyncSession, job: ClaimedJob, *, error: str, delay_seconds: float
) -> bool:
    result = await session.execute(
        text(
            "UPDATE jobs SET status = 'pending', last_error = :error, "
            "run_after = now() + make_interval(secs => :delay), "
            "lease_token = NULL, leased_until = NULL "
            "WHERE id = :id AND lease_token = :token AND status = 'running'"
        ),
        {"id": job.id, "token": job.lease_token, "error": error, "delay": delay_seconds},
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


async def mark_failed(session: AsyncSession, job: ClaimedJob, *, error: str) -> bool:
    """Park the job: no more attempts, the error kept for a person to read."""
    result = await session.execute(
        text(
            "UPDATE jobs SET status = 'failed', last_error = :error, finished_at = now(), "
            "lease_token = NULL, leased_until = NULL "
            "WHERE id = :id AND lease_token = :token AND status = 'running'"
        ),
        {"id": job.id, "token": job.lease_token, "error": error},
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


async def release(session: AsyncSession, jobs: Sequence[ClaimedJob]) -> None:
    """Hand interrupted jobs back at shutdown: claimable at once, the attempt not counted."""
    if not jobs:
        return
    await session.execute(
        text(
            "UPDATE jobs SET status = 'pending', attempts = greatest(attempts - 1, 0), "
            "run_after = now(), lease_token = NULL, leased_until = NULL "
            "WHERE id = ANY(:ids) AND lease_token = :token AND status = 'running'"
        ),
        {"ids": [j.id for j in jobs], "token": jobs[0].lease_token},
    )
    await session.commit()


async def retry_failed(session: AsyncSession, *, job_id: int) -> bool:
    """Operator action: give a parked job a fresh set of attempts."""
    result = await session.execute(
        text(
            "UPDATE jobs SET status = 'pending', attempts = 0, run_after = now(), "
            "finished_at = NULL WHERE id = :id AND status = 'failed'"
        ),
        {"id": job_id},
    )
    await session.commit()
    return bool(result.rowcount)  # type: ignore[attr-defined]


async def purge_succeeded(session: AsyncSession, *, older_than_days: float) -> int:
    """Delete succeeded jobs finished before the cutoff; failed ones stay for people to read.

    The audit log keeps the record of what happened; the job row is only the means.
    """
    result = await session.execute(
        text(
            "DELETE FROM jobs WHERE status = 'succeeded' "
            "AND finished_at < now() - make_interval(secs => :age)"
        ),
        {"age": older_than_days * 86400},
    )
    await session.commit()
    return result.rowcount  # type: ignore[attr-defined, no-any-return]


def backoff_seconds(attempt: int, *, base: float, cap: float) -> float:
    """Exponential backoff with 'equal jitter': between half and all of min(cap, base*2^(n-1)).

    Jitter spreads the retries of a backlog that failed together (an SMTP outage)
    so they don't all hit the server again in the same second.
    """
    ceiling = min(cap, base * 2 ** max(attempt - 1, 0))
    return float(ceiling / 2 + random.uniform(0, ceiling / 2))
