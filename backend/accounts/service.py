"""Registration and email verification: one implementation behind the form and the API."""

import enum
from dataclasses import dataclass

from sqlalchemy import func, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from backend.accounts.passwords import PasswordHasher
from backend.accounts.schemas import RegistrationIn
from backend.accounts.tokens import TokenProblem, VerificationTokens
from backend.accounts.welcome_email import enqueue_welcome_email
from backend.audit.job_kind import enqueue_audit
from backend.mail.addresses import UndeliverableAddress, check_deliverable
from backend.models import User

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


class UndeliverableEmailError(RegistrationRefused):
    """No email could ever reach this address through our relay (422): refused up front
    rather than queued as an email that can never be sent."""


@dataclass(frozen=True)
class Registered:
    user: User
    job_ids: list[int]


async def register(
    session: AsyncSession,
    *,
    data: RegistrationIn,
    channel: str,
    sender_address: str,
    smtputf8: bool,
    hasher: PasswordHasher,
) -> Registered:
    """Create the user and its background work (welcome email, audit row) in one transaction.

    Raises DuplicateUserError naming each taken field. The pre-check gives friendly
    messages; the unique indexes decide races, so two concurrent requests can't both win.
    Raises UndeliverableEmailError for an address the relay could never deliver to, and
    HashingOverloaded (before anything is written) when the hashers are saturated.

    The password is hashed first, before the session touches the database: no pooled
    connection or transaction is held while a hash runs (or waits for its turn).
    """
    try:
        check_deliverable(str(data.email), smtputf8=smtputf8)
    except UndeliverableAddress as exc:
        message = f"We cannot send email to this address: {exc}"
        raise UndeliverableEmailError({"email": message}) from exc
    password_hash = await hasher.hash(data.password)
    taken = await _taken_fields(session, username=data.username, email=str(data.email))
    if taken:
        raise DuplicateUserError(taken)

    user = User(username=data.username, email=str(data.email), password_hash=password_hash)
    session.add(user)
    try:
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
        await session.flush()
        await session.commit()
    except IntegrityError as exc:
        await session.rollback()
        raise DuplicateUserError(_fields_from_violation(exc)) from exc
    await session.refresh(user)
    return Registered(user=user, job_ids=[job.id for job in jobs])


async def _taken_fields(session: AsyncSession, *, username: str, email: str) -> dict[str, str]:
    username_taken = func.lower(User.username) == username.lower()
    email_taken = func.lower(User.email) == email.lower()
    rows = await session.execute(
        select(username_taken, email_taken).where(or_(username_taken, email_taken))
    )
    fields: dict[str, str] = {}
    for same_username, same_email in rows:
        if same_username:
            fields["username"] = USERNAME_TAKEN
        if same_email:
            fields["email"] = EMAIL_TAKEN
    return fields


def _fields_from_violation(exc: IntegrityError) -> dict[str, str]:
    constraint = getattr(getattr(exc.orig, "__cause__", None), "constraint_name", None)
    if constraint in _CONSTRAINT_FIELDS:
        field, message = _CONSTRAINT_FIELDS[constraint]
        return {field: message}
    raise exc


class Verification(enum.Enum):
    VERIFIED = "verified"
    ALREADY_VERIFIED = "already_verified"
    EXPIRED = "expired"
    INVALID = "invalid"


@dataclass(frozen=True)
class VerificationResult:
    status: Verification
    username: str | None = None
    job_ids: tuple[int, ...] = ()


async def verify_email(
    session: AsyncSession, *, token: str, tokens: VerificationTokens
) -> VerificationResult:
    claim = tokens.read(token)
    if claim is TokenProblem.EXPIRED:
        return VerificationResult(Verification.EXPIRED)
    if isinstance(claim, TokenProblem):
        return VerificationResult(Verification.INVALID)

    user = await session.scalar(
        select(User).where(User.id == claim.user_id, func.lower(User.email) == claim.email)
    )
    if user is None:
        return VerificationResult(Verification.INVALID)
    username = user.username  # read now: a rollback below expires the instance
    # Conditional update: of two clicks at once, exactly one verifies and writes the audit row.
    verified_id = await session.scalar(
        update(User)
        .where(User.id == user.id, User.email_verified_at.is_(None))
        .values(email_verified_at=func.now())
        .returning(User.id)
    )
    if verified_id is None:
        await session.rollback()
        return VerificationResult(Verification.ALREADY_VERIFIED, username=username)
    job = enqueue_audit(
        session,
        action="user.email_verified",
        user_id=user.id,
        details={"email": user.email},
    )
    await session.flush()
    await session.commit()
    return VerificationResult(Verification.VERIFIED, username=username, job_ids=(job.id,))
