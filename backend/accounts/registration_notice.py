"""REGISTRATION_ENUMERATION_SAFE: a taken email gets the answer of a new registration, and
the owner of the address an email saying someone tried to register with it.

Nothing tells the two apart from outside: the same status and body shape (a user that
does not exist, with an id of its own), about the same work (the password was hashed
before the lookup either way; here an update, a job insert and a commit stand for the
user's insert, its jobs and its commit), and mail to the address is counted against its
budget either way (the welcome email of a new registration; this notice, dropped silently
once the budget is spent).
"""

import logging
import uuid
from dataclasses import dataclass

from sqlalchemy import Boolean, func, literal, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from backend.accounts.mail_limit import MailLimit
from backend.accounts.schemas import RegistrationIn, UserOut
from backend.accounts.user_email import enqueue_user_email
from backend.audit.job_kind import enqueue_audit
from backend.models import User

KIND = "email.registration_attempt"
TEMPLATE = "registration_attempt"

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Pretended:
    user: UserOut
    job_ids: list[int]
    # The notice, when one was queued.
    email_job_id: int | None = None


async def notify_owner_instead(
    session: AsyncSession,
    *,
    owner_id: uuid.UUID | None,
    data: RegistrationIn,
    channel: str,
    sender_address: str,
    mail_limit: MailLimit,
) -> Pretended:
    """Queue the notice to the owner of `data.email` (found by its id, or looked up when a
    racing registration took the address after our check) and an audit row; answer with a
    user as a new registration would be answered.

    The id is a fresh random UUID, as a new user's would be, and names nobody: the owner's
    id stays private, and the registrant cannot tell it from a real one (nor use it: a
    verification link needs the address's mailbox)."""
    if owner_id is None:
        owner_id = await session.scalar(
            select(User.id).where(func.lower(User.email) == str(data.email).lower())
        )
    notice = owner_id is not None and await _within_budget(mail_limit, address=str(data.email))
    # The notice carries a fresh link when the account is unverified: like a resend, it
    # keeps the account from being replaced while that link works. Run either way (a
    # no-op without a notice), so both paths take the same round trips.
    await session.execute(
        update(User)
        .where(User.id == owner_id, User.email_verified_at.is_(None), literal(notice, Boolean))
        .values(verification_sent_at=func.now()),
        execution_options={"synchronize_session": False},
    )
    jobs = []
    if owner_id is not None and notice:
        jobs.append(
            enqueue_user_email(session, kind=KIND, user_id=owner_id, sender_address=sender_address)
        )
    notice_jobs = list(jobs)
    jobs.append(
        enqueue_audit(
            session,
            action="user.registration_attempted",
            user_id=owner_id,
            details={"channel": channel, "notice": "queued" if jobs else "dropped"},
        )
    )
    # The database's clock, as a new row's created_at would be; the query flushes the jobs.
    created_at = await session.scalar(select(func.now()))
    await session.commit()
    user = UserOut(
        id=uuid.uuid4(),
        username=data.username,
        email=str(data.email),
        created_at=created_at,
        email_verified_at=None,
    )
    return Pretended(
        user=user,
        job_ids=[job.id for job in jobs],
        email_job_id=notice_jobs[0].id if notice_jobs else None,
    )


async def _within_budget(mail_limit: MailLimit, *, address: str) -> bool:
    """Whether the notice may go (counted if so). A limit that cannot count drops it: a
    503 here, where a new registration answers 201, would tell the address is taken."""
    try:
        return await mail_limit.retry_after(address=address) is None
    except Exception:
        log.warning("a registration notice was dropped: its address could not be counted")
        return False
