"""Suppressed addresses: those the relay refused for good at `RCPT TO` (no such mailbox).

A relay that answers "550 5.1.1 no such user" will answer the same tomorrow, and a sender
that keeps trying is one the providers learn to distrust. So such an address goes on this
list (the relay's answer and the time with it), and no later email to it is attempted: its
job ends at once, its `last_error` starting with `SUPPRESSED_PREFIX`, which is what every
view of an email's fate reads as the state `suppressed`. Only an operator lifts an entry
(`python -m backend suppressions remove ADDRESS`, or the operator page).

Which refusals suppress is `faults.Fault.RECIPIENT_REFUSED`'s to say; this module keeps
the list. The address is kept as it was sent, lower-cased: a relay refuses one mailbox,
so `ada+news@` being unknown says nothing about `ada@`.
"""

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Self, cast

from sqlalchemy import Table, delete, func, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from backend.models import EmailSuppression

SUPPRESSED_PREFIX = "suppressed: "

_TABLE = cast(Table, EmailSuppression.__table__)  # declared as a FromClause; it is a Table


def suppression_key(address: str) -> str:
    """How an address is written on the list: as sent, lower-cased (so that an operator
    may type it in any case)."""
    return address.strip().lower()


def masked(address: str) -> str:
    """The address without its local part (what names the person), for `last_error`."""
    domain = address.rpartition("@")[2]
    return f"***@{domain}" if domain else "***"


@dataclass(frozen=True)
class Suppression:
    address: str
    reason: str
    created_at: datetime
    job_id: int | None

    def error(self) -> str:
        """The `last_error` of a job not sent because of this entry."""
        return (
            f"{SUPPRESSED_PREFIX}{masked(self.address)}: refused on "
            f"{self.created_at.date().isoformat()}: {self.reason}"
        )


@dataclass(frozen=True)
class SuppressionRow:
    """An address to put on the list, written in the transaction that records the failure
    of the job whose send it refused (a `jobs.handlers.Rows`): a job that runs twice
    writes it once, and a worker that lost its lease writes nothing."""

    address: str
    reason: str
    job_id: int

    @classmethod
    async def write_all(cls, session: AsyncSession, rows: Sequence[Self]) -> None:
        if not rows:
            return
        # An address already on the list keeps its first refusal.
        statement = insert(_TABLE).on_conflict_do_nothing(index_elements=["address"])
        await session.execute(
            statement,
            [
                {"address": suppression_key(r.address), "reason": r.reason, "job_id": r.job_id}
                for r in rows
            ],
        )


_COLUMNS = (
    EmailSuppression.address,
    EmailSuppression.reason,
    EmailSuppression.created_at,
    EmailSuppression.job_id,
)


async def suppressed_among(
    session: AsyncSession, addresses: Iterable[str]
) -> dict[str, Suppression]:
    """The entries for these addresses, by `suppression_key`: one query for a batch."""
    keys = sorted({suppression_key(address) for address in addresses})
    if not keys:
        return {}
    found = await session.execute(select(*_COLUMNS).where(EmailSuppression.address.in_(keys)))
    return {row.address: Suppression(*row) for row in found}


async def list_suppressions(session: AsyncSession, *, limit: int = 100) -> list[Suppression]:
    """The newest entries first."""
    found = await session.execute(
        select(*_COLUMNS)
        .order_by(EmailSuppression.created_at.desc(), EmailSuppression.address)
        .limit(limit)
    )
    return [Suppression(*row) for row in found]


async def count_suppressions(session: AsyncSession) -> int:
    return int(await session.scalar(select(func.count()).select_from(_TABLE)) or 0)


async def remove_suppression(session: AsyncSession, *, address: str) -> Suppression | None:
    """Take an address off the list in the caller's transaction; None when it was not on it."""
    found = await session.execute(
        delete(EmailSuppression)
        .where(EmailSuppression.address == suppression_key(address))
        .returning(*_COLUMNS)
    )
    row = found.first()
    return Suppression(*row) if row is not None else None
