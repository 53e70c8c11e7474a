"""Changing an account's address: asked for with the current password, confirmed by the
new address, undone by the old one (docs/address-change.md).

Asking writes nothing to `users`: one transaction writes the change row (superseding the
account's earlier unconfirmed ones), the confirm email to the new address, the notice to
the old one and the audit entry. An address another account has is answered alike, and
only its owner is told (`email.change_taken`), so the answer tells nobody who is
registered. The links are made when their emails are sent (`email_change_links.py`).

Opening a link changes nothing (`check_change_link`: mail scanners open links); its
button does, in one transaction (`email_change_apply.py`).
"""

import enum
import uuid
from dataclasses import dataclass

from sqlalchemy import ColumnElement, and_, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from backend.accounts import (
    email_change_confirm_email,
    email_change_notice_email,
    email_change_taken_email,
)
from backend.accounts.email_change_links import Purpose
from backend.accounts.mail_limit import MailLimit
from backend.accounts.passwords import PasswordHasher
from backend.accounts.signin import token_digest
from backend.accounts.user_email import enqueue_user_email
from backend.audit.job_kind import enqueue_audit
from backend.mail.addresses import UndeliverableAddress, check_deliverable
from backend.models import EmailChange, EmailChangeToken, Job, User

# A real token is 43 characters; anything far longer is junk, answered without a query.
_TOKEN_MAX_LENGTH = 256
SAME_ADDRESS = "This is already your address"


class ChangeRefused(Exception):
    """The new address cannot be accepted (422); `fields` maps each field to its message."""

    def __init__(self, fields: dict[str, str]) -> None:
        super().__init__(", ".join(fields.values()))
        self.fields = fields


@dataclass(frozen=True)
class ChangeRequested:
    # False: the password was wrong, and nothing was written.
    accepted: bool
    job_ids: tuple[int, ...] = ()
    # The old address, whose notice goes whatever its mail budget says (counted after).
    notified: str | None = None


class ChangeLink(enum.Enum):
    VALID = "valid"
    # The button's work is done: the address changed (confirm) or was restored (revert).
    DONE = "done"
    # The address is another account's now: nothing changed (409).
    TAKEN = "taken"
    EXPIRED = "expired"
    # Used already, or the change was confirmed, undone or replaced by a newer one since.
    USED = "used"
    INVALID = "invalid"


@dataclass(frozen=True)
class ChangeLinkResult:
    status: ChangeLink
    username: str | None = None
    old_email: str | None = None
    new_email: str | None = None
    # Whether the change had been confirmed (a revert then restores the old address).
    confirmed: bool = False
    user_id: uuid.UUID | None = None
    job_ids: tuple[int, ...] = ()


async def request_email_change(
    session: AsyncSession,
    *,
    user: User,
    new_email: str,
    password: str,
    channel: str,
    hasher: PasswordHasher,
    mail_limit: MailLimit,
    sender_address: str,
    smtputf8: bool,
) -> ChangeRequested:
    """Queue the emails of a change of `user`'s address to `new_email` (normalised as at
    registration), if `password` is theirs. Raises ChangeRefused for the current address
    or one the relay could never reach, and HashingOverloaded (before anything is written)
    when the hashers are saturated.

    Past the new address's mail budget the emails are dropped and the answer is the same
    (a 429 that only some addresses earn would tell them apart); nothing is written then
    but the audit entry."""
    if new_email.lower() == user.email.lower():
        raise ChangeRefused({"email": SAME_ADDRESS})
    try:
        check_deliverable(new_email, smtputf8=smtputf8)
    except UndeliverableAddress as exc:
        raise ChangeRefused({"email": f"We cannot send email to this address: {exc}"}) from exc
    # The session's transaction ends: no connection is held while the hash runs.
    await session.commit()
    matches, new_hash = await hasher.verify_and_update(password, user.password_hash)
    if not matches:
        return ChangeRequested(accepted=False)
    # Counted for the address as entered, whoever has it, before it is looked up.
    send = await mail_limit.retry_after(address=new_email) is None
    unchanged = and_(User.id == user.id, User.password_hash == user.password_hash)
    if new_hash is not None:
        await session.execute(update(User).where(unchanged).values(password_hash=new_hash))
    owner = await session.scalar(
        select(User.id).where(func.lower(User.email) == new_email.lower(), User.id != user.id)
    )
    jobs: list[Job] = []
    if owner is not None:
        if send:
            jobs.append(
                enqueue_user_email(
                    session,
                    kind=email_change_taken_email.KIND,
                    user_id=owner,
                    sender_address=sender_address,
                )
            )
        outcome = "taken"
    else:
        await _supersede_pending(session, user_id=user.id)
        if send:
            jobs += await _queue_change(
                session, user=user, new_email=new_email, sender_address=sender_address
            )
        outcome = "queued"
    jobs.append(
        enqueue_audit(
            session,
            action="email.change_requested",
            user_id=user.id,
            # No address: the requester's is in the trail already, and the new one is
            # recorded when (if) it is confirmed.
            details={"channel": channel, "outcome": outcome if send else "dropped"},
        )
    )
    await session.flush()
    await session.commit()
    notified = user.email if owner is None and send else None
    return ChangeRequested(accepted=True, job_ids=tuple(job.id for job in jobs), notified=notified)


async def _supersede_pending(session: AsyncSession, *, user_id: uuid.UUID) -> None:
    """Only the latest change can be confirmed: the links of earlier ones stop working."""
    await session.execute(
        update(EmailChange)
        .where(EmailChange.user_id == user_id, _pending())
        .values(superseded_at=func.now())
    )


async def _queue_change(
    session: AsyncSession, *, user: User, new_email: str, sender_address: str
) -> list[Job]:
    change_id = await session.scalar(
        insert(EmailChange)
        .values(user_id=user.id, old_email=user.email, new_email=new_email)
        .returning(EmailChange.id)
    )
    return [
        enqueue_user_email(
            session,
            kind=kind,
            user_id=user.id,
            sender_address=sender_address,
            extra={"to": to, "change_id": change_id},
        )
        for kind, to in (
            (email_change_confirm_email.KIND, new_email),
            (email_change_notice_email.KIND, user.email),
        )
    ]


def _pending() -> ColumnElement[bool]:
    """A change neither confirmed, undone nor replaced by a newer one."""
    return and_(
        EmailChange.confirmed_at.is_(None),
        EmailChange.reverted_at.is_(None),
        EmailChange.superseded_at.is_(None),
    )


def still_works(purpose: Purpose) -> ColumnElement[bool]:
    """The link's conditions, with its change and the account joined. Both: unused and
    unexpired. A confirm link: its change pending, and the account's address still the
    one the change was asked from. A revert link: its change not undone already (it may
    be confirmed, pending, or replaced by a newer request: it undoes whatever there is)."""
    common = and_(
        EmailChangeToken.purpose == purpose,
        EmailChangeToken.used_at.is_(None),
        EmailChangeToken.expires_at > func.now(),
    )
    if purpose == "revert":
        return and_(common, EmailChange.reverted_at.is_(None))
    return and_(common, _pending(), func.lower(User.email) == func.lower(EmailChange.old_email))


async def check_change_link(
    session: AsyncSession, *, token: str, purpose: Purpose
) -> ChangeLinkResult:
    """What the link would do, read only: VALID (with the account and the addresses), or
    why not."""
    if not token or len(token) > _TOKEN_MAX_LENGTH:
        return ChangeLinkResult(ChangeLink.INVALID)
    row = (
        await session.execute(
            select(
                User.id,
                User.username,
                EmailChange.old_email,
                EmailChange.new_email,
                EmailChange.confirmed_at.is_not(None),
                EmailChangeToken.used_at.is_not(None),
                EmailChangeToken.expires_at <= func.now(),
                still_works(purpose),
            )
            .join(EmailChange, EmailChange.id == EmailChangeToken.change_id)
            .join(User, User.id == EmailChange.user_id)
            .where(
                EmailChangeToken.token_hash == token_digest(token),
                EmailChangeToken.purpose == purpose,
            )
        )
    ).one_or_none()
    await session.commit()
    if row is None:
        return ChangeLinkResult(ChangeLink.INVALID)
    user_id, username, old_email, new_email, confirmed, used, expired, works = row
    if works:
        status = ChangeLink.VALID
    elif expired and not used:
        status = ChangeLink.EXPIRED
    else:
        status = ChangeLink.USED
    return ChangeLinkResult(
        status,
        username=username,
        old_email=old_email,
        new_email=new_email,
        confirmed=confirmed,
        user_id=user_id,
    )
