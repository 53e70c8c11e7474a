"""The jobs table as a queue: record, heartbeat, finish, retry, hold, release (claims are
in `jobs.claims`).

A job is recorded in the same transaction as the change it follows, so it exists
exactly when that change does. Claims take a lease (`leased_until`) under
`FOR UPDATE SKIP LOCKED`, so any number of processes can share the table; a job
whose lease ran out (its process died) becomes claimable again. Every write after
the claim is fenced by the lease token: a worker that lost its lease cannot
overwrite the outcome recorded by the one that took the job over.

Whatever makes a job due now also sends `NOTIFY jobs` in its transaction, so the pollers
of every process wake at once (`jobs.wakeups`) instead of at their next poll.
"""

import random
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy import (
    ColumnElement,
    FromClause,
    String,
    Table,
    Text,
    event,
    func,
    insert,
    literal,
    select,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session, SessionTransaction
from sqlalchemy.sql.dml import ReturningInsert

from backend.models import Job
from backend.observability import tracing
from backend.observability.request_context import LogContext, current_request_id

# The LISTEN/NOTIFY channel; the payload is empty (any process may handle any due job).
CHANNEL = "jobs"
_NOTIFY = "jobs.notify_on_commit"
# Core, not the ORM, for `enqueue_from`: its INSERT is a CTE of someone else's statement.
_JOBS = cast(Table, Job.__table__)  # declared as a FromClause; it is a Table


@dataclass(frozen=True)
class ClaimedJob:
    id: int
    kind: str
    payload: dict[str, Any]
    attempts: int  # including this one; attempts held back by an unavailable relay don't count
    lease_token: uuid.UUID
    expired: bool  # older than the give-up age when claimed: give it up, don't run it
    last_error: str | None
    # When it was queued (created, or retried by an operator), on this process's
    # time.monotonic() clock: its age by the database's clock when claimed, carried over
    # to ours, so that clocks that disagree do not skew the delivery latency.
    queued_at: float
    request_id: str | None = None  # of the request that queued it
    trace_context: str | None = None  # W3C traceparent of that request's span

    def log_context(self) -> LogContext:
        """Who this job's log lines are about (see `observability.request_context`)."""
        return LogContext(request_id=self.request_id, job_id=self.id, job_kind=self.kind)

    def trace(self) -> tracing.JobTrace | None:
        """What this job's span needs, while traces are on (None, and nothing made, when off)."""
        if tracing.active is None:
            return None
        return tracing.JobTrace(self.id, self.kind, self.attempts, self.trace_context)


def enqueue(session: AsyncSession, *, kind: str, payload: dict[str, Any]) -> Job:
    """Add a job to the session's transaction; it commits (or not) with the caller's work.
    It keeps the current request's id (none outside a request), for its log lines, and the
    current span's trace context (when traces are on), for its span."""
    job = Job(
        kind=kind,
        payload=payload,
        request_id=current_request_id(),
        trace_context=tracing.current_traceparent(),
    )
    session.add(job)
    notify_on_commit(session)
    return job


def notify_on_commit(session: AsyncSession) -> None:
    """Wake the workers of every process when the session's transaction commits.

    One `NOTIFY` just before the COMMIT, however many times this was called: one round
    trip, well under a millisecond (bench/RESULTS.md, "Wake-ups"). Postgres delivers it
    only on commit, so a rolled-back transaction wakes nobody."""
    session.sync_session.info[_NOTIFY] = True


def enqueue_from(
    rows: FromClause,
    *,
    kind: str,
    payload: Mapping[str, Any],
    payload_from_row: Mapping[str, ColumnElement[Any]] | None = None,
) -> ReturningInsert[tuple[int, Any]]:
    """`enqueue` in SQL: one job of `kind` for each row of `rows` (a CTE of the caller's),
    for a caller that queues its jobs in the same statement as the change they follow (so
    as to take one round trip). Use it as a CTE of that statement: it returns `id`.

    The payload is `payload` completed in SQL with `payload_from_row` (field name: a
    column of `rows`, e.g. the user's id). Like `enqueue`, the job keeps the current
    request's id and trace context, and the workers wake at commit: `pg_notify` is
    evaluated per job inserted (Postgres delivers one per transaction), costing no round
    trip, and nothing when nothing was queued."""
    fields = [item for name, value in (payload_from_row or {}).items() for item in (name, value)]
    full_payload: ColumnElement[Any] = literal(dict(payload), JSONB)
    if fields:
        full_payload = full_payload.op("||", return_type=JSONB)(func.jsonb_build_object(*fields))
    return (
        insert(_JOBS)
        .from_select(
            ["kind", "payload", "request_id", "trace_context"],
            select(
                literal(kind, String),
                full_payload,
                literal(current_request_id(), Text),
                literal(tracing.current_traceparent(), Text),
            ).select_from(rows),
        )
        .returning(_JOBS.c.id, func.pg_notify(CHANNEL, "").label("woke"))
    )


@event.listens_for(Session, "before_commit")
def _notify_before_commit(session: Session) -> None:
    if session.info.pop(_NOTIFY, False):
        session.connection().exec_driver_sql(f"NOTIFY {CHANNEL}")


@event.listens_for(Session, "after_transaction_end")
def _forget_when_over(session: Session, transaction: SessionTransaction) -> None:
    if transaction.parent is None:  # the whole transaction, not a savepoint, is over
        session.info.pop(_NOTIFY, None)


_FENCE = "lease_token = :token AND status = 'running'"


async def extend_leases(
    session: AsyncSession, *, jobs: Sequence[ClaimedJob], lease_seconds: float
) -> set[int]:
    """Heartbeat: push the leases of jobs still being worked on; returns the ids still ours."""
    if not jobs:
        return set()
    result = await session.execute(
        text(
            "UPDATE jobs SET leased_until = now() + make_interval(secs => :lease) "
            f"WHERE id = ANY(:ids) AND {_FENCE} RETURNING id"
        ),
        {"lease": lease_seconds, "ids": [j.id for j in jobs], "token": jobs[0].lease_token},
    )
    ours = set(result.scalars())
    await session.commit()
    return ours


async def mark_succeeded(session: AsyncSession, jobs: Sequence[ClaimedJob]) -> set[int]:
    """In the caller's transaction; returns the ids still ours. A job whose lease was lost
    is left alone (its new owner records it), and nothing else should be written for it.
    One statement for jobs of several batches (each batch has its own lease token)."""
    if not jobs:
        return set()
    result = await session.execute(
        text(
            "UPDATE jobs SET status = 'succeeded', finished_at = now(), last_error = NULL, "
            "lease_token = NULL, leased_until = NULL "
            "FROM unnest(CAST(:ids AS bigint[]), CAST(:tokens AS uuid[])) AS ours(id, token) "
            "WHERE jobs.id = ours.id AND jobs.lease_token = ours.token "
            "AND jobs.status = 'running' RETURNING jobs.id"
        ),
        {"ids": [job.id for job in jobs], "tokens": [job.lease_token for job in jobs]},
    )
    return set(result.scalars())


async def mark_for_retry(
    session: AsyncSession, job: ClaimedJob, *, error: str, delay_seconds: float
) -> bool:
    result = await session.execute(
        text(
            "UPDATE jobs SET status = 'pending', last_error = :error, "
            "run_after = now() + make_interval(secs => :delay), "
            f"lease_token = NULL, leased_until = NULL WHERE id = :id AND {_FENCE}"
        ),
        {"id": job.id, "token": job.lease_token, "error": error, "delay": delay_seconds},
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


async def hold(session: AsyncSession, job: ClaimedJob, *, reason: str) -> bool:
    """Hand a job back untouched: due at once, the attempt not counted. Its kind's handler
    keeps it from being claimed again until what it needs is back."""
    result = await session.execute(
        text(
            "UPDATE jobs SET status = 'pending', attempts = greatest(attempts - 1, 0), "
            "last_error = :reason, run_after = now(), lease_token = NULL, leased_until = NULL "
            f"WHERE id = :id AND {_FENCE}"
        ),
        {"id": job.id, "token": job.lease_token, "reason": reason},
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


async def mark_failed(
    session: AsyncSession, job: ClaimedJob, *, error: str, attempted: bool = True
) -> bool:
    """Park the job: no more attempts, the error kept for a person to read. Without
    `attempted`, the claim's attempt is taken back: nothing was tried."""
    result = await session.execute(
        text(
            "UPDATE jobs SET status = 'failed', last_error = :error, finished_at = now(), "
            "attempts = CASE WHEN :attempted THEN attempts ELSE greatest(attempts - 1, 0) END, "
            f"lease_token = NULL, leased_until = NULL WHERE id = :id AND {_FENCE}"
        ),
        {"id": job.id, "token": job.lease_token, "error": error, "attempted": attempted},
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
            f"WHERE id = ANY(:ids) AND {_FENCE}"
        ),
        {"ids": [j.id for j in jobs], "token": jobs[0].lease_token},
    )
    notify_on_commit(session)  # another process can take them at once
    await session.commit()


def backoff_seconds(attempt: int, *, base: float, cap: float) -> float:
    """Exponential backoff with 'equal jitter': between half and all of min(cap, base*2^(n-1)).

    Jitter spreads the retries of messages that failed together so they don't all hit the
    server again in the same second.
    """
    ceiling = min(cap, base * 2 ** max(attempt - 1, 0))
    return float(ceiling / 2 + random.uniform(0, ceiling / 2))
