"""Writing audit_log rows.

Rows about background work carry the job that wrote them, and are written in the same
transaction that records the job's outcome, under its lease: a job that runs twice
(a crash after its effect) still leaves one row.
"""

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, cast

from sqlalchemy import Table
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from backend.jobs.admin import JobAction
from backend.models import AuditLog

_AUDIT_LOG = cast(Table, AuditLog.__table__)  # declared as a FromClause; it is a Table


@dataclass(frozen=True)
class AuditEntry:
    action: str
    user_id: uuid.UUID | None
    details: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class JobAuditRow:
    """An entry written with the outcome of the job that did it (see `jobs.handlers.Rows`)."""

    entry: AuditEntry
    job_id: int

    @classmethod
    async def write_all(cls, session: AsyncSession, rows: Sequence["JobAuditRow"]) -> None:
        await record_many(session, [(row.job_id, row.entry) for row in rows])


async def record(session: AsyncSession, *, entry: AuditEntry, job_id: int | None) -> None:
    """Insert one row in the caller's transaction."""
    await record_many(session, [(job_id, entry)])


async def record_many(
    session: AsyncSession, entries: Sequence[tuple[int | None, AuditEntry]]
) -> None:
    """Insert rows in the caller's transaction. One statement whose compiled form is cached
    (the rows go as parameters), since this runs for every email sent; on the table, not
    the mapped class, so that no ORM bookkeeping runs for rows nobody reads back."""
    if not entries:
        return
    await session.execute(
        insert(_AUDIT_LOG),
        [
            {
                "action": entry.action,
                "user_id": entry.user_id,
                "job_id": job_id,
                "details": entry.details,
            }
            for job_id, entry in entries
        ],
    )


async def record_job_actions(session: AsyncSession, action: str, jobs: Sequence[JobAction]) -> None:
    """The audit trail of operator actions on jobs (a `jobs.admin.ActionRecorder`): one row
    per job, in the caller's transaction, so that it commits with the change."""
    await record_many(
        session,
        [
            (job.job_id, AuditEntry(action=action, user_id=None, details=job.details))
            for job in jobs
        ],
    )
