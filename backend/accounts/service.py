"""Registration: one implementation behind the form and the API.

No squatting: an unverified account whose latest link was queued longer ago than
`replace_unverified_after` (VERIFICATION_MAX_AGE_SECONDS + UNVERIFIED_ACCOUNT_GRACE_HOURS)
no longer holds its username or email. A registration that meets one replaces it: the old
row is deleted in the registration's own transaction, and a `user.replaced` audit row
names it. Deleted, not overwritten: the new account gets an id of its own, so nothing
made for the old one (a link, a queued email) can reach the new one.
"""

import logging
import uuid
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import ColumnElement, and_, delete, false, func, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from backend.accounts.mail_limit import MailLimit
from backend.accounts.passwords import HashingOverloaded, PasswordHasher
from backend.accounts.registration_notice import notify_owner_instead
from backend.accounts.schemas import RegistrationIn, UserOut
from backend.accounts.welcome_email import enqueue_welcome_email
from backend.audit.job_kind import enqueue_audit
from backend.mail.addresses import UndeliverableAddress, check_deliverable, is_tagged
from backend.models import Job, User
from backend.observability import metrics

log = logging.getLogger(__name__)

USERNAME_TAKEN = "This username is already taken"
EMAIL_TAKEN = "An account with this email already exists"
_CONSTRAINT_FIELDS = {
    "uq_users_username_lower": ("username", USERNAME_TAKEN),
    "uq_users_email_lower": ("email", EMAIL_TAKEN),
}


class RegistrationRefused(Exception):
    """The registration cannot be accepted; `fields` maps each field to its message."""

    def __init__(self, fields: dict[str, str]) -> None:
        super().__init__(", ".join(fields.values()))
        self.fields = fields


class DuplicateUserError(RegistrationRefused):
    """The username or the email is taken (409)."""


class MailboxBudgetUsed(Exception):
    """A `+tag` address whose mailbox has had its MAIL_PER_ADDRESS_LIMIT of email: a new
    account with yet another tag would be yet another welcome email to it (429)."""

    def __init__(self, retry_after: int) -> None:
        super().__init__(
            "This mailbox has been sent too many emails lately. Please try again later, "
            "or register with the address without its +tag."
        )
        self.retry_after = retry_after


class UndeliverableEmailError(RegistrationRefused):
    """No email could ever reach this address through our relay (422): refused up front
    rather than queued as an email that can never be sent."""


@dataclass(frozen=True)
class Registered:
    # What the client is told; in enumeration-safe mode, for a taken email, a user that
    # was never created (see registration_notice.py).
    user: UserOut
    job_ids: list[int]
    # The email queued for it (the welcome email, or the owner's notice), whose state the
    # page after registering shows; None when none was (a notice past its budget).
    email_job_id: int | None = None


@dataclass(frozen=True)
class _Holder:
    """An account holding the username or the email asked for."""

    id: uuid.UUID
    username: bool
    email: bool
    replaceable: bool


async def register(
    session: AsyncSession,
    *,
    data: RegistrationIn,
    channel: metrics.Channel,
    sender_address: str,
    smtputf8: bool,
    hasher: PasswordHasher,
    mail_limit: MailLimit,
    enumeration_safe: bool = False,
    replace_unverified_after: timedelta | None = None,
) -> Registered:
    """Create the user and its background work (welcome email, audit row) in one transaction.

    Raises DuplicateUserError naming each taken field (with `enumeration_safe`, the
    username only: a taken email is answered as a new registration, and its owner gets a
    notice). The pre-check gives friendly messages; the unique indexes decide races, so
    two concurrent requests can't both win. Raises UndeliverableEmailError for an address
    the relay could never deliver to, and HashingOverloaded (before anything is written)
    when the hashers are saturated.

    The password is hashed first, before the session touches the database: no pooled
    connection or transaction is held while a hash runs (or waits for its turn). It is
    hashed whether or not the names are free, so the time taken tells nothing.

    The welcome email is counted against the address's mail budget (MailLimit) once the
    account is committed, even past the limit, and never refused by it: a refusal would
    leave the new account without its link. Nor is it needed: a second welcome email to
    the address needs a second account with it, which the unique index refuses. Resends
    and notices to the address that follow find the budget used. A `+tag` address is the
    exception: `ada+1@`, `ada+2@`… are accounts of their own and one mailbox, so each
    asks the budget first, and past it the registration is refused (MailboxBudgetUsed)
    before anything is written. An untagged address is never refused: someone asking for
    resends to it cannot keep its owner from registering.
    """
    try:
        try:
            check_deliverable(str(data.email), smtputf8=smtputf8)
        except UndeliverableAddress as exc:
            message = f"We cannot send email to this address: {exc}"
            raise UndeliverableEmailError({"email": message}) from exc
        tagged = is_tagged(str(data.email))
        if tagged and (wait := await mail_limit.retry_after(address=str(data.email))):
            raise MailboxBudgetUsed(wait)
        password_hash = await hasher.hash(data.password)
        holders = await _holders(
            session, data=data, replace_unverified_after=replace_unverified_after
        )
        staying = [holder for holder in holders if not holder.replaceable]
        taken = _taken_fields(staying)

        async def answer_as_new(owner: uuid.UUID | None) -> Registered:
            pretended = await notify_owner_instead(
                session,
                owner_id=owner,
                data=data,
                channel=channel,
                sender_address=sender_address,
                mail_limit=mail_limit,
            )
            metrics.registration(channel, "owner_notified")
            return Registered(
                user=pretended.user,
                job_ids=pretended.job_ids,
                email_job_id=pretended.email_job_id,
            )

        if enumeration_safe and set(taken) == {"email"}:
            return await answer_as_new(next(holder.id for holder in staying if holder.email))
        if taken:
            raise DuplicateUserError(_told(taken, enumeration_safe=enumeration_safe))

        try:
            user, jobs = await _create(
                session,
                data=data,
                password_hash=password_hash,
                channel=channel,
                sender_address=sender_address,
                replacing=[holder.id for holder in holders if holder.replaceable],
                replace_unverified_after=replace_unverified_after,
            )
        except DuplicateUserError as exc:
            if not (enumeration_safe and set(exc.fields) == {"email"}):
                raise
            # A racing registration took the address after our check: answered like any
            # taken address, its owner (now committed) notified.
            return await answer_as_new(None)
        # After the commit: the session holds no connection meanwhile. (A tagged address
        # was counted before.)
        try:
            if not tagged:
                await mail_limit.count_sent(address=str(data.email))
        except Exception:
            # The account is saved and its email queued: an answer of failure now would
            # send the user to register again (and meet a 409). An uncounted email is a
            # smaller harm than a lost user.
            log.warning("a welcome email could not be counted against its address", exc_info=True)
    except Exception as exc:
        metrics.registration(channel, _OUTCOMES.get(type(exc), "error"))
        raise
    metrics.registration(channel, "created")
    # jobs[0] is the welcome email (see _create).
    return Registered(
        user=UserOut.model_validate(user),
        job_ids=[job.id for job in jobs],
        email_job_id=jobs[0].id,
    )


_OUTCOMES: dict[type[Exception], metrics.RegistrationOutcome] = {
    DuplicateUserError: "conflict",
    UndeliverableEmailError: "undeliverable",
    HashingOverloaded: "overloaded",
    MailboxBudgetUsed: "rate_limited",
}


async def _create(
    session: AsyncSession,
    *,
    data: RegistrationIn,
    password_hash: str,
    channel: str,
    sender_address: str,
    replacing: list[uuid.UUID],
    replace_unverified_after: timedelta | None,
) -> tuple[User, list[Job]]:
    """Insert the user and its jobs, after deleting the expired accounts it replaces, and
    commit. Raises DuplicateUserError when a unique index refuses the user: a racing
    registration won, or an account to replace was verified (or sent a new link) since
    it was looked at, and so was not deleted."""
    # The id chosen here, not at flush: the audit rows of the accounts it replaces name it.
    user = User(
        id=uuid.uuid4(),
        username=data.username,
        email=str(data.email),
        password_hash=password_hash,
        email_verified_at=None,
    )
    try:
        replaced = await _delete_replaceable(
            session, ids=replacing, replace_unverified_after=replace_unverified_after
        )
        session.add(user)
        await session.flush()
        jobs = [
            enqueue_welcome_email(session, user=user, sender_address=sender_address),
            enqueue_audit(
                session,
                action="user.registered",
                user_id=user.id,
                details={"username": user.username, "email": user.email, "channel": channel},
            ),
        ]
        jobs += [
            enqueue_audit(
                session,
                action="user.replaced",
                user_id=old_id,
                details={"replaced_by": str(user.id), "channel": channel},
            )
            for old_id in replaced
        ]
        await session.flush()
        await session.commit()
    except IntegrityError as exc:
        await session.rollback()
        raise DuplicateUserError(_fields_from_violation(exc)) from exc
    return user, jobs


async def _holders(
    session: AsyncSession, *, data: RegistrationIn, replace_unverified_after: timedelta | None
) -> list[_Holder]:
    same_username = func.lower(User.username) == data.username.lower()
    same_email = func.lower(User.email) == str(data.email).lower()
    replaceable = _replaceable(replace_unverified_after)
    rows = await session.execute(
        select(User.id, same_username, same_email, replaceable).where(
            or_(same_username, same_email)
        )
    )
    return [_Holder(*row) for row in rows]


def _replaceable(replace_unverified_after: timedelta | None) -> ColumnElement[bool]:
    """Unverified, and its latest link queued longer ago than the setting: the link
    expired more than the grace period ago."""
    if replace_unverified_after is None:
        return false()
    return and_(
        User.email_verified_at.is_(None),
        User.verification_sent_at < func.now() - replace_unverified_after,
    )


async def _delete_replaceable(
    session: AsyncSession, *, ids: list[uuid.UUID], replace_unverified_after: timedelta | None
) -> list[uuid.UUID]:
    if not ids:
        return []
    # The condition again, under the row lock the delete takes: an account verified or
    # sent a new link since the lookup stays (and the insert then meets its index).
    deleted = await session.scalars(
        delete(User)
        .where(User.id.in_(ids), _replaceable(replace_unverified_after))
        .returning(User.id),
        execution_options={"synchronize_session": False},
    )
    return list(deleted)


def _taken_fields(holders: list[_Holder]) -> dict[str, str]:
    fields: dict[str, str] = {}
    for holder in holders:
        if holder.username:
            fields["username"] = USERNAME_TAKEN
        if holder.email:
            fields["email"] = EMAIL_TAKEN
    return fields


def _told(taken: dict[str, str], *, enumeration_safe: bool) -> dict[str, str]:
    """What a 409 may say: usernames are public, so a taken one is said openly; in
    enumeration-safe mode a taken email is never said."""
    if enumeration_safe:
        return {field: message for field, message in taken.items() if field != "email"}
    return taken


def _fields_from_violation(exc: IntegrityError) -> dict[str, str]:
    constraint = getattr(getattr(exc.orig, "__cause__", None), "constraint_name", None)
    if constraint in _CONSTRAINT_FIELDS:
        field, message = _CONSTRAINT_FIELDS[constraint]
        return {field: message}
    raise exc
