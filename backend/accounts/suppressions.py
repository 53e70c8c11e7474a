"""The suppression list (`backend/mail/suppressions.py`) with its audit trail: an address
goes on it with a `suppression.added` row, and comes off it with a `suppression.removed`
row, each in the same transaction as the change."""

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from backend.audit.service import AuditEntry, JobAuditRow, record
from backend.mail.suppressions import Suppression, SuppressionRow, remove_suppression

ADDED = "suppression.added"
REMOVED = "suppression.removed"


@dataclass(frozen=True)
class SuppressionAdded:
    """What a recipient refused for good leaves (a `jobs.handlers.Rows`, written with the
    job's failure): the address on the list, and the audit row saying so. An address that
    was on the list already keeps its first entry; the audit row tells of this refusal."""

    suppression: SuppressionRow
    audit: JobAuditRow

    @classmethod
    async def write_all(cls, session: AsyncSession, rows: Sequence["SuppressionAdded"]) -> None:
        await SuppressionRow.write_all(session, [row.suppression for row in rows])
        await JobAuditRow.write_all(session, [row.audit for row in rows])


async def lift(
    session: AsyncSession, *, address: str, by: str, details: dict[str, Any] | None = None
) -> Suppression | None:
    """Take an address off the list, audited, in the caller's transaction (the caller
    commits); None when it was not on the list (nothing is written then)."""
    removed = await remove_suppression(session, address=address)
    if removed is None:
        return None
    entry = AuditEntry(
        action=REMOVED,
        user_id=None,
        details={
            "address": removed.address,
            "by": by,
            "reason": removed.reason,
            "since": removed.created_at.isoformat(),
            **(details or {}),
        },
    )
    await record(session, entry=entry, job_id=None)
    return removed
