"""The buttons of an address change's links: confirming the new address, and undoing the
change from the old one. Each is one transaction that writes everything or nothing.

The unique index on lower(email) decides a race: of two accounts confirming the same
address at once, the second UPDATE waits for the first and is refused by the index; that
transaction is rolled back whole and answered TAKEN (a friendly 409 page), never a 5xx.
The account's row is locked first, so two presses of the same button (or a confirm and a
revert at once) run one after the other, and the token's conditional UPDATE lets exactly
one of them through.
"""

import uuid
from dataclasses import replace

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from backend.accounts.email_change import (
    ChangeLink,
    ChangeLinkResult,
    check_change_link,
    still_works,
)
from backend.accounts.email_change_links import Purpose
from backend.accounts.signin import token_digest
from backend.audit.job_kind import enqueue_audit
from backend.models import EmailChange, EmailChangeToken, PasswordResetToken, User, UserSession


async def confirm_change(session: AsyncSession, *, token: str, channel: str) -> ChangeLinkResult:
    """Move the account to the change's new address (confirmed: its owner opened the
    link), or say why not. Reset links made before die: they went to the old address."""
    checked = await check_change_link(session, token=token, purpose="confirm")
    if checked.status is not ChangeLink.VALID or checked.user_id is None:
        return checked
    change_id = await _use_token(session, token=token, purpose="confirm", user_id=checked.user_id)
    if change_id is None:
        return replace(checked, status=ChangeLink.USED)
    try:
        await session.execute(
            update(User)
            .where(User.id == checked.user_id)
            .values(email=checked.new_email, email_verified_at=func.now())
        )
    except IntegrityError:
        await session.rollback()
        return replace(checked, status=ChangeLink.TAKEN)
    await session.execute(
        update(EmailChange).where(EmailChange.id == change_id).values(confirmed_at=func.now())
    )
    await _expire_reset_links(session, user_id=checked.user_id)
    job = enqueue_audit(
        session,
        action="email.change_confirmed",
        user_id=checked.user_id,
        details={"channel": channel, "email": checked.new_email, "old_email": checked.old_email},
    )
    await session.flush()
    await session.commit()
    return ChangeLinkResult(
        ChangeLink.DONE,
        username=checked.username,
        old_email=checked.old_email,
        new_email=checked.new_email,
        confirmed=True,
        user_id=checked.user_id,
        job_ids=(job.id,),
    )


async def revert_change(session: AsyncSession, *, token: str, channel: str) -> ChangeLinkResult:
    """Undo the change: the old address back (when it was confirmed; otherwise the change
    is only cancelled), every pending change cancelled, and every session, bearer token,
    reset link and address-change link of the account revoked: someone who knew the
    password asked for it, and it was not the owner of the old address."""
    checked = await check_change_link(session, token=token, purpose="revert")
    if checked.status is not ChangeLink.VALID or checked.user_id is None:
        return checked
    user_id = checked.user_id
    change_id = await _use_token(session, token=token, purpose="revert", user_id=user_id)
    if change_id is None:
        return replace(checked, status=ChangeLink.USED)
    confirmed = await session.scalar(
        select(EmailChange.confirmed_at.is_not(None)).where(EmailChange.id == change_id)
    )
    if confirmed:
        try:
            await session.execute(
                update(User)
                .where(User.id == user_id)
                .values(email=checked.old_email, email_verified_at=func.now())
            )
        except IntegrityError:
            await session.rollback()
            return replace(checked, status=ChangeLink.TAKEN)
    await session.execute(
        update(EmailChange).where(EmailChange.id == change_id).values(reverted_at=func.now())
    )
    await session.execute(
        update(EmailChange)
        .where(
            EmailChange.user_id == user_id,
            EmailChange.confirmed_at.is_(None),
            EmailChange.reverted_at.is_(None),
            EmailChange.superseded_at.is_(None),
        )
        .values(superseded_at=func.now())
    )
    revoked = (
        await session.scalars(
            update(UserSession)
            .where(UserSession.user_id == user_id, UserSession.revoked_at.is_(None))
            .values(revoked_at=func.now())
            .returning(UserSession.id)
        )
    ).all()
    await _expire_reset_links(session, user_id=user_id)
    await session.execute(
        update(EmailChangeToken)
        .where(
            EmailChangeToken.change_id.in_(
                select(EmailChange.id).where(EmailChange.user_id == user_id)
            ),
            EmailChangeToken.used_at.is_(None),
        )
        .values(used_at=func.now())
    )
    job = enqueue_audit(
        session,
        action="email.change_reverted",
        user_id=user_id,
        details={
            "channel": channel,
            "email": checked.old_email,
            "restored": bool(confirmed),
            "sessions_revoked": len(revoked),
        },
    )
    await session.flush()
    await session.commit()
    return ChangeLinkResult(
        ChangeLink.DONE,
        username=checked.username,
        old_email=checked.old_email,
        new_email=checked.new_email,
        confirmed=bool(confirmed),
        user_id=user_id,
        job_ids=(job.id,),
    )


async def _use_token(
    session: AsyncSession, *, token: str, purpose: Purpose, user_id: uuid.UUID
) -> int | None:
    """Lock the account's row, then use the token if it still works: its change's id.
    None: another press of a button won meanwhile (the transaction is rolled back)."""
    await session.execute(select(User.id).where(User.id == user_id).with_for_update())
    used = await session.scalar(
        update(EmailChangeToken)
        .where(
            EmailChangeToken.token_hash == token_digest(token),
            EmailChangeToken.change_id == EmailChange.id,
            EmailChange.user_id == User.id,
            still_works(purpose),
        )
        .values(used_at=func.now())
        .returning(EmailChangeToken.change_id)
    )
    if used is None:
        await session.rollback()
    return used


async def _expire_reset_links(session: AsyncSession, *, user_id: uuid.UUID) -> None:
    await session.execute(
        update(PasswordResetToken)
        .where(PasswordResetToken.user_id == user_id, PasswordResetToken.used_at.is_(None))
        .values(used_at=func.now())
    )
