"""Confirming an address with the link from an email.

Two steps, because mail scanners (Safe Links, Proofpoint) open every link in an email:
`check_link` reads the link and names the account, changing nothing (GET /verify shows
it with a button); only `verify_email` confirms (the button's POST /verify). A scanner's
GET of someone else's registration therefore cannot confirm an address for them.
"""

import enum
from dataclasses import dataclass

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from backend.accounts.tokens import TokenProblem, VerificationTokens
from backend.audit.job_kind import enqueue_audit
from backend.models import User


class Verification(enum.Enum):
    # The link is good and the address not confirmed yet: the page asks to confirm.
    PENDING = "pending"
    VERIFIED = "verified"
    ALREADY_VERIFIED = "already_verified"
    EXPIRED = "expired"
    INVALID = "invalid"


@dataclass(frozen=True)
class VerificationResult:
    status: Verification
    username: str | None = None
    job_ids: tuple[int, ...] = ()


async def _linked_user(
    session: AsyncSession, *, token: str, tokens: VerificationTokens
) -> User | Verification:
    claim = tokens.read(token)
    if claim is TokenProblem.EXPIRED:
        return Verification.EXPIRED
    if isinstance(claim, TokenProblem):
        return Verification.INVALID
    # A link to an account replaced since (see service.register) finds no user: invalid.
    user = await session.scalar(
        select(User).where(User.id == claim.user_id, func.lower(User.email) == claim.email)
    )
    return Verification.INVALID if user is None else user


async def check_link(
    session: AsyncSession, *, token: str, tokens: VerificationTokens
) -> VerificationResult:
    """What the link would do, read only: PENDING (with the account's name) when a POST
    of it would confirm; otherwise the answer the POST would give."""
    user = await _linked_user(session, token=token, tokens=tokens)
    if isinstance(user, Verification):
        return VerificationResult(user)
    confirmed = user.email_verified_at is not None
    status = Verification.ALREADY_VERIFIED if confirmed else Verification.PENDING
    return VerificationResult(status, username=user.username)


async def verify_email(
    session: AsyncSession, *, token: str, tokens: VerificationTokens
) -> VerificationResult:
    user = await _linked_user(session, token=token, tokens=tokens)
    if isinstance(user, Verification):
        return VerificationResult(user)
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
