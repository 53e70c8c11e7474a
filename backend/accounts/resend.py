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

from sqlalchemy import (
    Boolean,
    String,
    Table,
    Text,
    cast,
    func,
    insert,
    literal,
    select,
    true,
    update,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.selectable import CTE

from backend.accounts.mail_limit import MailLimit
from backend.accounts.user_email import user_email_payload
from backend.audit.job_kind import KIND as AUDIT_KIND
from backend.audit.job_kind import audit_payload
from backend.jobs.outbox import wake_workers
from backend.models import Job, User
from backend.observability import tracing
from backend.observability.request_context import current_request_id

KIND = "email.verification"
TEMPLATE = "verify"

# Core, not the ORM: the statement is one SELECT over data-modifying CTEs.
_users = typing.cast(Table, User.__table__)
_jobs = typing.cast(Table, Job.__table__)


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
    email_job = _job_for(
        target, KIND, user_email_payload(kind=KIND, sender_address=sender_address), "email_job"
    )
    audit = audit_payload(
        action="user.verification_requested", user_id=None, details={"channel": channel}
    )
    audit_job = _job_for(target, AUDIT_KIND, audit, "audit_job")
    both = email_job.join(audit_job, true())  # one row of each, or none of either
    # The wake-up rides on the same statement: no round trip more, so no time that tells
    # a queued email from none (and no notification when nothing was queued).
    queued = (
        await session.execute(
            select(email_job.c.id, audit_job.c.id, wake_workers()).select_from(both)
        )
    ).one_or_none()
    await session.commit()
    return ResendRequested(job_ids=(queued[0], queued[1]) if queued else ())


def _job_for(target: CTE, kind: str, payload: dict[str, object], name: str) -> CTE:
    """A job of `kind` for each user of `target` (none or one), its payload completed
    with the user's id in SQL."""
    with_user = literal(payload, JSONB).op("||", return_type=JSONB)(
        func.jsonb_build_object("user_id", cast(target.c.id, Text))
    )
    # The request's id and span, as `jobs.outbox.enqueue` stores them, for the job's log
    # lines and its span.
    request_id = literal(current_request_id(), Text)
    trace_context = literal(tracing.current_traceparent(), Text)
    return (
        insert(_jobs)
        .from_select(
            ["kind", "payload", "request_id", "trace_context"],
            select(literal(kind, String), with_user, request_id, trace_context),
        )
        .returning(_jobs.c.id)
        .cte(name)
    )
