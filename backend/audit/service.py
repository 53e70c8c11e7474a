"""Writing audit_log rows.

Rows are written by background work. A row carries the job that wrote it, and
`(job_id, action)` is unique, so a job that runs twice still leaves one row.
"""

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from backend.models import AuditLog


@dataclass(frozen=True)
class AuditEntry:
    action: str
    user_id: uuid.UUID | None
    details: dict[str, Any] = field(default_factory=dict)


async def record(session: AsyncSession, entry: AuditEntry, *, job_id: int | None) -> bool:
    """Insert the row unless this job already wrote it; True when a row was written."""
    return await record_many(session, [(job_id, entry)]) == 1


async def record_many(
    session: AsyncSession, entries: Sequence[tuple[int | None, AuditEntry]]
) -> int:
    """Insert rows in one statement, skipping those their job already wrote; returns how many
    were written."""
    if not entries:
        return 0
    statement = (
        insert(AuditLog)
        .values(
            [
                {
                    "action": entry.action,
                    "user_id": entry.user_id,
                    "job_id": job_id,
                    "details": entry.details,
                }
                for job_id, entry in entries
            ]
        )
        .on_conflict_do_nothing(constraint="uq_audit_log_job_id_action")
        .returning(AuditLog.id)
    )
    return len((await session.execute(statement)).all())
