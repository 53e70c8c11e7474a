"""The queue seen and steered by people: counts, listings, retries, cancellations (the CLI
and the operator page use these).

Operator actions are audited in the caller's transaction, one `audit_log` row per job
changed: the change and its record commit together or not at all. The rows are written
by the `ActionRecorder` the caller hands in (`audit.service.record_job_actions`):
the queue sits below the features built on it and imports none of them.
"""

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from sqlalchemy import (
    BindParameter,
    ColumnElement,
    Select,
    Update,
    bindparam,
    func,
    select,
    text,
    update,
)
from sqlalchemy.ext.asyncio import AsyncSession

from backend.jobs.outbox import notify_on_commit
from backend.models import JOB_STATUSES, Job

# A running job belongs to its worker (its lease): it can be neither retried nor cancelled.
RETRYABLE = ("failed", "pending")
CANCELLABLE = ("pending", "failed")


@dataclass(frozen=True)
class JobAction:
    """One job an operator action changed, as its audit row records it."""

    job_id: int
    details: dict[str, Any]


class ActionRecorder(Protocol):
    """Writes the audit rows of an operator action (`job.retried`, `job.cancelled`): one
    per job, added to `session`'s transaction, so that they commit with the change."""

    async def __call__(
        self, session: AsyncSession, action: str, jobs: Sequence[JobAction]
    ) -> None: ...


# The counts read no finished job beyond the last day's: the waiting, running and failed
# jobs through their partial indexes (as `stats`), the cancelled and the recently
# succeeded ones from `ix_jobs_finished` alone (an index-only scan). The succeeded jobs,
# most of the table until retention purges them, are counted over `SUCCEEDED_WINDOW`
# only; `/metrics` counts them all as they finish (`welcome_mail_jobs_finished_total`).
SUCCEEDED_WINDOW = "24 hours"
COUNTS = text(
    f"""
    SELECT kind, status, count(*) AS jobs FROM jobs
    WHERE status = 'pending' OR status = 'running' OR status = 'failed'
    GROUP BY kind, status
    UNION ALL
    SELECT kind, status, count(*) FROM jobs WHERE status = 'cancelled' GROUP BY kind, status
    UNION ALL
    SELECT kind, status, count(*) FROM jobs
    WHERE status = 'succeeded' AND finished_at > now() - interval '{SUCCEEDED_WINDOW}'
    GROUP BY kind, status
    """
)


async def status_counts(session: AsyncSession) -> dict[str, int]:
    """{status: count}; succeeded: those of the last `SUCCEEDED_WINDOW`."""
    return totals(await kind_counts(session))


def totals(by_kind: Mapping[str, Mapping[str, int]]) -> dict[str, int]:
    """{status: count} over all kinds, from `kind_counts`."""
    counts = dict.fromkeys(JOB_STATUSES, 0)
    for by_status in by_kind.values():
        for status, count in by_status.items():
            counts[status] += count
    return counts


async def kind_counts(session: AsyncSession) -> dict[str, dict[str, int]]:
    """{kind: {status: count}} for every kind with jobs counted, kinds in name order;
    succeeded: those of the last `SUCCEEDED_WINDOW`."""
    counts: dict[str, dict[str, int]] = {}
    for kind, status, count in sorted(await session.execute(COUNTS)):
        counts.setdefault(kind, dict.fromkeys(JOB_STATUSES, 0))[status] = count
    return counts


async def list_jobs(
    session: AsyncSession,
    *,
    statuses: Sequence[str],
    kind: str | None = None,
    before_id: int | None = None,
    limit: int = 50,
) -> list[Job]:
    """The newest jobs in these states (of this kind, older than `before_id`), newest first."""
    query = select(Job).where(*_matching(statuses=statuses, kind=kind))
    if before_id is not None:
        query = query.where(Job.id < before_id)
    result = await session.scalars(query.order_by(Job.id.desc()).limit(limit))
    return list(result)


async def count_jobs(
    session: AsyncSession, *, statuses: Sequence[str], kind: str | None = None
) -> tuple[int, int | None]:
    """How many jobs match, and the newest one's id (None when none does)."""
    count, newest = (await session.execute(count_query(statuses=statuses, kind=kind))).one()
    return int(count), newest


def count_query(*, statuses: Sequence[str], kind: str | None = None) -> Select[int, int]:
    return select(func.count(), func.max(Job.id)).where(*_matching(statuses=statuses, kind=kind))


async def retry(
    session: AsyncSession,
    *,
    by: str,
    record: ActionRecorder,
    job_id: int | None = None,
    statuses: Collection[str] = ("failed",),
    kind: str | None = None,
    since: datetime | None = None,
    through_id: int | None = None,
    details: Mapping[str, Any] | None = None,
) -> list[Job]:
    """Operator action, in the caller's transaction: make the matching jobs due now, with a
    fresh give-up age (it counts from now) and fresh backoff; audited through `record` as
    `job.retried` (`by` who, plus `details`). Returns the jobs retried.

    Only finished-for-good or waiting jobs can be retried (`failed` or `pending`).
    `through_id` bounds a filtered set to the jobs an operator saw (none queued since).
    """
    _refuse_other_than(statuses, RETRYABLE, "retried")
    query = update(Job).values(
        status="pending",
        attempts=0,
        run_after=func.now(),
        retried_at=func.now(),
        finished_at=None,
    )
    retried = await _act(
        session,
        query,
        action="job.retried",
        by=by,
        record=record,
        details=details,
        selection={"job_id": job_id, "statuses": statuses, "kind": kind, "since": since},
        through_id=through_id,
    )
    if retried:
        notify_on_commit(session)  # running apps take them at once, not at their next poll
    return retried


async def cancel(
    session: AsyncSession,
    *,
    by: str,
    record: ActionRecorder,
    job_id: int | None = None,
    statuses: Collection[str] = CANCELLABLE,
    kind: str | None = None,
    through_id: int | None = None,
    details: Mapping[str, Any] | None = None,
) -> list[Job]:
    """Operator action, in the caller's transaction: the matching pending or failed jobs
    become `cancelled`, which the queue never claims or retries; audited through `record`
    as `job.cancelled`. Their last error stays, for the record. Returns the jobs cancelled.
    """
    _refuse_other_than(statuses, CANCELLABLE, "cancelled")
    query = update(Job).values(
        status="cancelled", finished_at=func.now(), lease_token=None, leased_until=None
    )
    return await _act(
        session,
        query,
        action="job.cancelled",
        by=by,
        record=record,
        details=details,
        selection={"job_id": job_id, "statuses": statuses, "kind": kind, "since": None},
        through_id=through_id,
    )


async def _act(
    session: AsyncSession,
    query: Update,
    *,
    action: str,
    by: str,
    record: ActionRecorder,
    details: Mapping[str, Any] | None,
    selection: dict[str, Any],
    through_id: int | None,
) -> list[Job]:
    query = query.where(*_matching(**selection))
    if through_id is not None:
        query = query.where(Job.id <= through_id)
    # The WHERE is checked again on each row after its lock (READ COMMITTED): a job a
    # worker claimed meanwhile is `running` by then, and left alone.
    changed = list(await session.scalars(query.returning(Job)))
    if changed:
        await record(
            session,
            action,
            [
                JobAction(
                    job.id,
                    {"kind": job.kind, "by": by, "last_error": job.last_error, **(details or {})},
                )
                for job in changed
            ],
        )
    return sorted(changed, key=lambda job: job.id)


def _matching(
    *,
    statuses: Collection[str],
    job_id: int | None = None,
    kind: str | None = None,
    since: datetime | None = None,
) -> list[ColumnElement[bool]]:
    # The statuses as literals in the SQL (they are ours, checked by every caller): only
    # then can the planner use a state's partial index, and not read the finished jobs
    # (most of the table) to count or list the failed or pending ones.
    in_statuses: BindParameter[list[str]] = bindparam(
        "statuses", list(statuses), expanding=True, literal_execute=True
    )
    clauses: list[ColumnElement[bool]] = [Job.status.in_(in_statuses)]
    if job_id is not None:
        clauses.append(Job.id == job_id)
    if kind is not None:
        clauses.append(Job.kind == kind)
    if since is not None:
        clauses.append(Job.created_at >= since)
    return clauses


def _refuse_other_than(statuses: Collection[str], allowed: Sequence[str], done: str) -> None:
    if not statuses or not set(statuses) <= set(allowed):
        raise ValueError(f"only {' or '.join(allowed)} jobs can be {done}")
