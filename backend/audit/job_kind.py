"""The audit entry as a job kind: queued with the change it records, written by the runner
in the same transaction that marks the job done."""

import uuid
from collections.abc import AsyncGenerator, Sequence
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from backend.audit.service import AuditEntry, JobAuditRow
from backend.jobs.handlers import Done, Failed, Outcome
from backend.jobs.outbox import ClaimedJob, enqueue
from backend.models import Job

KIND = "audit.write"


def enqueue_audit(
    session: AsyncSession,
    *,
    action: str,
    user_id: uuid.UUID | None,
    details: dict[str, Any] | None = None,
) -> Job:
    """Record an audit entry to be written by background work, in the caller's transaction."""
    payload = audit_payload(action=action, user_id=user_id, details=details)
    return enqueue(session, kind=KIND, payload=payload)


def audit_payload(
    *, action: str, user_id: uuid.UUID | None, details: dict[str, Any] | None = None
) -> dict[str, Any]:
    """The payload of an audit job (for a caller that inserts the job in its own SQL)."""
    return {
        "action": action,
        "user_id": str(user_id) if user_id else None,
        "details": details or {},
    }


class AuditHandler:
    async def run(
        self, jobs: Sequence[ClaimedJob]
    ) -> AsyncGenerator[tuple[ClaimedJob, Outcome], None]:
        for job in jobs:
            try:
                entry = entry_from(job.payload)
            except (KeyError, TypeError, ValueError) as exc:
                yield job, Failed(error=f"malformed payload: {exc!r}", permanent=True)
                continue
            yield job, Done(rows=JobAuditRow(entry, job.id))

    async def on_give_up(self, session: AsyncSession, job: ClaimedJob, error: str) -> None:
        """Nothing: the entry that could not be written is itself the audit row."""

    def ready(self) -> bool:
        return True


def entry_from(payload: dict[str, Any]) -> AuditEntry:
    user_id = payload.get("user_id")
    return AuditEntry(
        action=str(payload["action"]),
        user_id=uuid.UUID(user_id) if user_id else None,
        details=dict(payload.get("details") or {}),
    )
