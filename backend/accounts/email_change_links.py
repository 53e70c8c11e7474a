"""The links of an address change, made when their emails are sent: `ChangeLinks` writes
one `email_change_tokens` row per email, as `password_reset_email.ResetLinks` does for
the reset, so no job payload ever holds a working token (only the change's id).

The confirm link goes to the new address, the revert link to the old one; each email
also names the addresses concerned, read from the change row at send time.
"""

import secrets
from collections.abc import Sequence
from datetime import timedelta
from typing import Literal

from sqlalchemy import Interval, func, insert, literal, select
from sqlalchemy.ext.asyncio import AsyncSession

from backend.accounts.signin import token_digest
from backend.accounts.tokens import human_duration
from backend.jobs.outbox import ClaimedJob
from backend.models import EmailChange, EmailChangeToken, User

Purpose = Literal["confirm", "revert"]


def masked(address: str) -> str:
    """`nina@example.com` → `n***@example.com`: enough for the owner of the old address to
    recognise the new one (or not), not enough to hand a stranger a working address."""
    local, _, domain = address.rpartition("@")
    return f"{local[:1]}***@{domain}"


def change_id(job: ClaimedJob) -> int | None:
    value = job.payload.get("change_id")
    return value if isinstance(value, int) and not isinstance(value, bool) else None


class ChangeLinks:
    """`change_url`, `change_lifetime`, `new_email` and `new_email_masked` for each email of
    one purpose, a token row each."""

    def __init__(self, *, purpose: Purpose, lifetime_seconds: int, app_base_url: str) -> None:
        self._purpose = purpose
        self._ttl = timedelta(seconds=lifetime_seconds)
        self._url = f"{app_base_url.rstrip('/')}/email/{purpose}?token="
        # What the emails and pages say: "valid for 24 hours", "for 7 days".
        self.lifetime = human_duration(lifetime_seconds)

    async def for_jobs(
        self, session: AsyncSession, recipients: Sequence[tuple[ClaimedJob, User]]
    ) -> dict[int, dict[str, str]]:
        # A job without its change gets no values: its template then fails to render,
        # and that job alone fails.
        wanted = {job.id: cid for job, _ in recipients if (cid := change_id(job)) is not None}
        found = await session.execute(
            select(EmailChange.id, EmailChange.new_email).where(
                EmailChange.id.in_(set(wanted.values()))
            )
        )
        changes: dict[int, str] = {change: address for change, address in found.all()}
        wanted = {job_id: cid for job_id, cid in wanted.items() if cid in changes}
        if not wanted:
            return {}
        tokens = {job_id: secrets.token_urlsafe(32) for job_id in wanted}
        expires_at = func.now() + literal(self._ttl, Interval)
        await session.execute(
            insert(EmailChangeToken).values(
                [
                    {
                        "change_id": cid,
                        "purpose": self._purpose,
                        "token_hash": token_digest(tokens[job_id]),
                        "expires_at": expires_at,
                    }
                    for job_id, cid in wanted.items()
                ]
            )
        )
        return {
            job_id: {
                "change_url": self._url + tokens[job_id],
                "change_lifetime": self.lifetime,
                "new_email": changes[cid],
                "new_email_masked": masked(changes[cid]),
            }
            for job_id, cid in wanted.items()
        }
