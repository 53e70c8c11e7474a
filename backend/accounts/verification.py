"""Confirming an address with the link from an email (GET /verify)."""

import enum
from dataclasses import dataclass

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from backend.accounts.tokens import TokenProblem, VerificationTokens
from backend.audit.job_kind import enqueue_audit
from backend.models import User


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

    # A link to an account replaced since (see service.register) finds no user: invalid.
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
