"""Writing audit_log rows.

Rows are written by background work. A row carries the job that wrote it, and
`(job_id, action)` is unique, so a job that runs twice still leaves one row.
"""

import uuid
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
    statement = (
        insert(AuditLog)
        .values(action=entry.action, user_id=entry.user_id, job_id=job_id, details=entry.details)
        .on_conflict_do_nothing(constraint="uq_audit_log_job_id_action")
        .returning(AuditLog.id)
    )
    return (await session.execute(statement)).scalar_one_or_none() is not None
