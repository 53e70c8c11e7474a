"""Claiming jobs: lease the claimable ones under `FOR UPDATE SKIP LOCKED`.

A job is claimable in three ways: due (pending, `run_after` passed), lapsed (running,
its lease ran out: its process died), or too old to wait any longer (it is then given
up, not run). A job's age counts from its creation, or from an operator's retry. Only
kinds this process has a handler for are claimed (a rolling deploy cannot park a new
kind), and of those only the ready ones, unless the job is too old and must be given up.

Each way is found through its own index, reading at most `limit` rows however long the
queue is: due jobs kind by kind along `ix_jobs_due_by_kind`, too-old ones along
`ix_jobs_pending_age`, lapsed ones along `ix_jobs_lease`. A relay outage holds every
email back while sign-ups go on; the three conditions ORed in one query made Postgres
collect and sort every due job on each claim, held emails included, on every wake-up of
every process: 12.6 ms per claim beside 100,000 held emails, against 0.9 ms now
(`bench/claims.py`).
"""

import time
import uuid
from collections.abc import Collection, Sequence
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from backend.jobs.outbox import ClaimedJob

_TOO_OLD = "coalesce(retried_at, created_at) < now() - make_interval(secs => :max_age)"

# Rows locked by a branch but not picked in the end are released at the commit that
# follows at once; another worker skips them meanwhile, as it skips the picked ones.
_FROM_THE_QUEUE = f"""
WITH due AS (
    SELECT job.id, job.run_after
    FROM unnest(CAST(:ready AS text[])) AS ready (kind),
    LATERAL (
        SELECT id, run_after FROM jobs
        WHERE status = 'pending' AND kind = ready.kind AND run_after <= now()
        ORDER BY run_after, id
        LIMIT :limit
        FOR UPDATE SKIP LOCKED
    ) AS job
), too_old AS (
    SELECT id, run_after FROM jobs
    WHERE status = 'pending' AND run_after <= now() AND kind = ANY(:known) AND {_TOO_OLD}
    ORDER BY coalesce(retried_at, created_at)
    LIMIT :limit
    FOR UPDATE SKIP LOCKED
), lapsed AS (
    SELECT id, run_after FROM jobs
    WHERE status = 'running' AND leased_until < now() AND kind = ANY(:known)
      AND (kind = ANY(:ready) OR {_TOO_OLD})
    ORDER BY leased_until
    LIMIT :limit
    FOR UPDATE SKIP LOCKED
), picked AS (
    SELECT id FROM (SELECT * FROM due UNION SELECT * FROM too_old UNION SELECT * FROM lapsed)
        AS claimable
    ORDER BY run_after, id
    LIMIT :limit
)
"""

# Found by primary key: the jobs a request just queued, started after its response.
_BY_ID = f"""
WITH picked AS (
    SELECT id FROM jobs
    WHERE id = ANY(:ids)
      AND ((status = 'pending' AND run_after <= now())
           OR (status = 'running' AND leased_until < now()))
      AND kind = ANY(:known)
      AND (kind = ANY(:ready) OR {_TOO_OLD})
    FOR UPDATE SKIP LOCKED
)
"""

_LEASE_PICKED = f"""
UPDATE jobs
SET status = 'running',
    attempts = attempts + 1,
    lease_token = :token,
    leased_until = now() + make_interval(secs => :lease)
WHERE id = ANY(ARRAY(SELECT id FROM picked))
RETURNING id, kind, payload, attempts, last_error, request_id, trace_context,
          extract(epoch FROM now() - coalesce(retried_at, created_at)) AS age,
          {_TOO_OLD} AS expired
"""

CLAIM_FROM_THE_QUEUE = text(_FROM_THE_QUEUE + _LEASE_PICKED)
CLAIM_BY_ID = text(_BY_ID + _LEASE_PICKED)


async def claim(
    session: AsyncSession,
    *,
    lease_seconds: float,
    limit: int,
    known_kinds: Collection[str],
    ready_kinds: Collection[str],
    max_age_seconds: float,
    ids: Sequence[int] | None = None,
) -> list[ClaimedJob]:
    """Lease up to `limit` claimable jobs (only among `ids` when given) and commit the lease."""
    token = uuid.uuid4()
    params: dict[str, Any] = {
        "token": token,
        "lease": lease_seconds,
        "known": list(known_kinds),
        "ready": list(ready_kinds),
        "max_age": max_age_seconds,
    }
    if ids is None:
        rows = await session.execute(CLAIM_FROM_THE_QUEUE, {**params, "limit": limit})
    else:
        rows = await session.execute(CLAIM_BY_ID, {**params, "ids": list(ids)[:limit]})
    claimed_at = time.monotonic()
    claimed = [
        ClaimedJob(
            id=row.id,
            kind=row.kind,
            payload=row.payload,
            attempts=row.attempts,
            lease_token=token,
            expired=row.expired,
            last_error=row.last_error,
            request_id=row.request_id,
            queued_at=claimed_at - float(row.age),
            trace_context=row.trace_context,
        )
        for row in rows
    ]
    await session.commit()
    return sorted(claimed, key=lambda job: job.id)
