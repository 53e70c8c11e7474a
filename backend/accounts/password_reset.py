"""Forgotten passwords: asking for a reset link, what a link would do, and using it.

Asking answers the same for every address, and does the same work: the per-address
counts first (PASSWORD_RESET_RATE_LIMIT, then the mail budget), then one statement that
finds the account and queues its email and audit entry in the same round trip (nothing
when no account has the address, or a count said no), then a commit. The link itself is
made when the email is sent (`password_reset_email.py`).

A link (a `password_reset_tokens` row) works once, until it expires, and only if it was
made after the password last changed. Opening it changes nothing (mail scanners open
links: `check_reset_link`); the form's POST uses it (`reset_password`): the new password
is hashed first, holding no connection, then one transaction writes everything or
nothing: the token used (a conditional UPDATE: of two resets at once with one link,
exactly one wins), the hash, `password_changed_at`, the address confirmed (the email
reached its owner), every session and token revoked, and the "password changed" email
and the audit entry queued.
"""

import enum
import typing
from dataclasses import dataclass

from sqlalchemy import (
    Boolean,
    ColumnElement,
    Table,
    Text,
    and_,
    cast,
    func,
    literal,
    or_,
    select,
    true,
    update,
)
from sqlalchemy.ext.asyncio import AsyncSession

from backend.accounts import password_changed_email, password_reset_email
from backend.accounts.mail_limit import MailLimit
from backend.accounts.passwords import PasswordHasher
from backend.accounts.signin import token_digest
from backend.accounts.user_email import enqueue_user_email, user_email_payload
from backend.audit.job_kind import KIND as AUDIT_KIND
from backend.audit.job_kind import audit_payload, enqueue_audit
from backend.jobs.outbox import enqueue_from
from backend.mail.addresses import mailbox_key
from backend.models import PasswordResetToken, User, UserSession
from backend.ratelimits import Limiter

_users = typing.cast(Table, User.__table__)
# A real token is 43 characters; anything far longer is junk, answered without a query.
_TOKEN_MAX_LENGTH = 256


class ResetLink(enum.Enum):
    # The link works: the page asks for the new password.
    VALID = "valid"
    # The password was changed with it.
    DONE = "done"
    EXPIRED = "expired"
    # Used already, or the password changed since it was made.
    USED = "used"
    INVALID = "invalid"


@dataclass(frozen=True)
class ResetResult:
    status: ResetLink
    username: str | None = None
    # After DONE: the jobs to start, and the account's username and address (its sign-in
    # counts are cleared; the "password changed" email is counted in its mail budget).
    job_ids: tuple[int, ...] = ()
    email: str | None = None

    @property
    def logins(self) -> tuple[str, ...]:
        return tuple(login for login in (self.username, self.email) if login)


async def request_password_reset(
    session: AsyncSession,
    *,
    email: str,
    channel: str,
    sender_address: str,
    mail_limit: MailLimit,
    address_limit: Limiter,
) -> tuple[int, ...]:
    """Queue a reset email to `email` if an account has it; the job ids (empty when none).

    Past PASSWORD_RESET_RATE_LIMIT for the address, or its mail budget, the email is
    dropped, not refused: a 429 that only some addresses earn would tell them apart."""
    send = await address_limit.hit(key=mailbox_key(email)) is None
    send = send and await mail_limit.retry_after(address=email) is None
    target = (
        select(_users.c.id)
        .where(func.lower(_users.c.email) == email.lower(), literal(send, Boolean))
        .cte("target")
    )
    user_id = {"user_id": cast(target.c.id, Text)}
    email_job = enqueue_from(
        target,
        kind=password_reset_email.KIND,
        payload=user_email_payload(kind=password_reset_email.KIND, sender_address=sender_address),
        payload_from_row=user_id,
    ).cte("email_job")
    audit_job = enqueue_from(
        target,
        kind=AUDIT_KIND,
        payload=audit_payload(
            action="user.password_reset_requested", user_id=None, details={"channel": channel}
        ),
        payload_from_row=user_id,
    ).cte("audit_job")
    both = email_job.join(audit_job, true())  # one row of each, or none of either
    queued = (
        await session.execute(select(email_job.c.id, audit_job.c.id).select_from(both))
    ).one_or_none()
    await session.commit()
    return (queued[0], queued[1]) if queued else ()


def _still_works() -> ColumnElement[bool]:
    """The link's conditions, with `users` joined: unused, unexpired, made after the
    password last changed."""
    return and_(
        PasswordResetToken.used_at.is_(None),
        PasswordResetToken.expires_at > func.now(),
        or_(
            User.password_changed_at.is_(None),
            PasswordResetToken.created_at > User.password_changed_at,
        ),
    )


async def check_reset_link(session: AsyncSession, *, token: str) -> ResetResult:
    """What the link would do, read only: VALID (with the account's name), or why not."""
    if not token or len(token) > _TOKEN_MAX_LENGTH:
        return ResetResult(ResetLink.INVALID)
    row = (
        await session.execute(
            select(
                User.username,
                PasswordResetToken.used_at.is_not(None),
                PasswordResetToken.expires_at <= func.now(),
                _still_works(),
            )
            .join(User, User.id == PasswordResetToken.user_id)
            .where(PasswordResetToken.token_hash == token_digest(token))
        )
    ).one_or_none()
    # Ends the read's transaction: the caller may hash a password next.
    await session.commit()
    if row is None:
        return ResetResult(ResetLink.INVALID)
    username, used, expired, works = row
    if works:
        return ResetResult(ResetLink.VALID, username=username)
    if expired and not used:
        return ResetResult(ResetLink.EXPIRED, username=username)
    return ResetResult(ResetLink.USED, username=username)


async def reset_password(
    session: AsyncSession,
    *,
    token: str,
    password: str,
    channel: str,
    hasher: PasswordHasher,
    sender_address: str,
) -> ResetResult:
    """Set a new password with this link, or say why the link does not work. Raises
    HashingOverloaded (before anything is written) when the hashers are saturated."""
    checked = await check_reset_link(session, token=token)
    if checked.status is not ResetLink.VALID:
        return checked
    password_hash = await hasher.hash(password)
    digest = token_digest(token)
    user_id = await session.scalar(
        select(PasswordResetToken.user_id).where(PasswordResetToken.token_hash == digest)
    )
    # The account's row locked first: a reset with another of its links waits, then sees
    # the new password_changed_at, and its link no longer works.
    await session.execute(select(User.id).where(User.id == user_id).with_for_update())
    used = await session.scalar(
        update(PasswordResetToken)
        .where(
            PasswordResetToken.token_hash == digest,
            PasswordResetToken.user_id == User.id,
            _still_works(),
        )
        .values(used_at=func.now())
        .returning(PasswordResetToken.id)
    )
    if used is None:  # another reset with this link won meanwhile
        await session.rollback()
        return ResetResult(ResetLink.USED, username=checked.username)
    changed = (
        await session.execute(
            update(User)
            .where(User.id == user_id)
            .values(
                password_hash=password_hash,
                password_changed_at=func.now(),
                email_verified_at=func.coalesce(User.email_verified_at, func.now()),
            )
            .returning(User.id, User.username, User.email)
        )
    ).one()
    revoked = (
        await session.scalars(
            update(UserSession)
            .where(UserSession.user_id == changed.id, UserSession.revoked_at.is_(None))
            .values(revoked_at=func.now())
            .returning(UserSession.id)
        )
    ).all()
    jobs = [
        enqueue_user_email(
            session,
            kind=password_changed_email.KIND,
            user_id=changed.id,
            sender_address=sender_address,
        ),
        enqueue_audit(
            session,
            action="user.password_reset",
            user_id=changed.id,
            details={"channel": channel, "sessions_revoked": len(revoked)},
        ),
    ]
    await session.flush()
    await session.commit()
    return ResetResult(
        ResetLink.DONE,
        username=changed.username,
        job_ids=tuple(job.id for job in jobs),
        email=changed.email,
    )
