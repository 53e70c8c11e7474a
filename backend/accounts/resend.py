"""Resending the verification email (POST /verify/resend, POST /api/verification/resend).

Asked for an address, it answers the same whoever owns it: a new verification email is
queued only when the address belongs to an unverified account, and nothing says whether
one was. So that the time taken does not say it either, every request does the same work:
one count against the address's mail budget, then one statement that looks the account up
and queues its email and audit entry in the same round trip (inserting nothing when there
is no such account, or when the budget is spent), then a commit.
"""

import typing
from dataclasses import dataclass

from sqlalchemy import Boolean, Table, Text, cast, func, literal, select, true, update
from sqlalchemy.ext.asyncio import AsyncSession

from backend.accounts.mail_limit import MailLimit
from backend.accounts.user_email import user_email_payload
from backend.audit.job_kind import KIND as AUDIT_KIND
from backend.audit.job_kind import audit_payload
from backend.jobs.outbox import enqueue_from
from backend.models import User

KIND = "email.verification"
TEMPLATE = "verify"

# Core, not the ORM: the statement is one SELECT over data-modifying CTEs.
_users = typing.cast(Table, User.__table__)


@dataclass(frozen=True)
class ResendRequested:
    # Empty when nothing was queued; only for handing to the runner, never for the answer.
    job_ids: tuple[int, ...]


async def request_verification_email(
    session: AsyncSession,
    *,
    email: str,
    channel: str,
    sender_address: str,
    mail_limit: MailLimit,
) -> ResendRequested:
    """Queue a new verification email to `email` if it belongs to an unverified account.

    The address's mail budget is counted first, for every address alike (MailLimit's
    rule); past it the email is dropped, not refused: a 429 would tell the address was
    sent something. The account's `verification_sent_at` moves to now, so its new link
    keeps it from being replaced by a new registration until that link has expired too.
    """
    send = await mail_limit.retry_after(address=email) is None
    target = (
        update(_users)
        .where(
            func.lower(_users.c.email) == email.lower(),
            _users.c.email_verified_at.is_(None),
            # The same statement when the budget is spent, so as to take the same time.
            literal(send, Boolean),
        )
        .values(verification_sent_at=func.now())
        .returning(_users.c.id)
        .cte("target")
    )
    # Each job's payload gets the user's id in SQL: the id is known only to the statement.
    user_id = {"user_id": cast(target.c.id, Text)}
    email_job = enqueue_from(
        target,
        kind=KIND,
        payload=user_email_payload(kind=KIND, sender_address=sender_address),
        payload_from_row=user_id,
    ).cte("email_job")
    audit_job = enqueue_from(
        target,
        kind=AUDIT_KIND,
        payload=audit_payload(
            action="user.verification_requested", user_id=None, details={"channel": channel}
        ),
        payload_from_row=user_id,
    ).cte("audit_job")
    both = email_job.join(audit_job, true())  # one row of each, or none of either
    # The workers' wake-up rides on the inserts (see `enqueue_from`): no round trip more,
    # so no time that tells a queued email from none.
    queued = (
        await session.execute(select(email_job.c.id, audit_job.c.id).select_from(both))
    ).one_or_none()
    await session.commit()
    return ResendRequested(job_ids=(queued[0], queued[1]) if queued else ())
