"""What a job handler is, and the one handler the jobs package owns: writing audit rows.

A handler takes a batch of claimed jobs of one kind and returns one outcome per job,
in order. It performs the side effect (send the email); the runner then records the
outcome and the outcome's audit entries in one transaction, fenced by the lease.
Handlers for domain work (the welcome email) live with their domain and are wired
together in `backend.main`.
"""

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from sqlalchemy.ext.asyncio import AsyncSession

from backend.audit.service import AuditEntry
from backend.jobs.outbox import ClaimedJob, enqueue
from backend.models import Job

AUDIT_KIND = "audit.write"


@dataclass(frozen=True)
class Done:
    """The effect happened; these audit entries are written with the job's completion."""

    audit: Sequence[AuditEntry] = ()


@dataclass(frozen=True)
class Failed:
    """The effect did not happen. Retried unless permanent or out of attempts."""

    error: str
    permanent: bool = False


Outcome = Done | Failed


class Handler(Protocol):
    async def __call__(self, jobs: Sequence[ClaimedJob]) -> Sequence[Outcome]:
        """Perform the jobs' effects; one outcome per job, in order."""
        ...

    def on_give_up(self, job: ClaimedJob, error: str) -> Sequence[AuditEntry]:
        """Audit entries to write when the job is parked as failed, however that happens
        (its last attempt failed, a permanent error, or its worker died every time)."""
        ...


def enqueue_audit(
    session: AsyncSession,
    *,
    action: str,
    user_id: uuid.UUID | None,
    details: dict[str, Any] | None = None,
    max_attempts: int,
) -> Job:
    """Record an audit entry to be written by background work, in the caller's transaction."""
    payload = {
        "action": action,
        "user_id": str(user_id) if user_id else None,
        "details": details or {},
    }
    return enqueue(session, kind=AUDIT_KIND, payload=payload, max_attempts=max_attempts)


class AuditHandler:
    """The row itself is written by the runner, atomically with the job's completion."""

    async def __call__(self, jobs: Sequence[ClaimedJob]) -> Sequence[Outcome]:
        return [Done(audit=[_entry(job.payload)]) for job in jobs]

    def on_give_up(self, job: ClaimedJob, error: str) -> Sequence[AuditEntry]:
        return ()  # the entry that could not be written is itself the audit row


def _entry(payload: dict[str, Any]) -> AuditEntry:
    user_id = payload.get("user_id")
    return AuditEntry(
        action=str(payload["action"]),
        user_id=uuid.UUID(user_id) if user_id else None,
        details=dict(payload.get("details") or {}),
    )
