"""Signing in: a login and a password for a session (a browser's cookie or an API bearer
token), checking a session, and ending it.

Sessions are opaque random tokens (`secrets.token_urlsafe(32)`); only their SHA-256 is
stored (`sessions.token_hash`), so the table lets nobody in. A plain hash is enough: the
token has 256 bits of entropy, nothing to guess, unlike a password.

The password is checked in the bounded Argon2 pool with no database connection held: the
account is looked up in a short transaction of its own, ended before the hash runs, and
the session written after it. An unknown login is checked against a dummy hash with the
same parameters, so that it costs what a wrong password costs and gets the same answer.
"""

import enum
import hashlib
import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from sqlalchemy import Interval, String, and_, func, insert, literal, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from backend.accounts.passwords import PasswordHasher
from backend.models import User, UserSession

SessionKind = Literal["browser", "bearer"]
# `last_seen_at` is written at most this often per session: the idle limit is in days,
# and a write per request would cost more than it tells.
TOUCH_EVERY = timedelta(minutes=1)
USER_AGENT_MAX_LENGTH = 256
# A real token is 43 characters; anything far longer is junk, answered without a query.
_TOKEN_MAX_LENGTH = 256
# The longest login an account can have (an address); Postgres text holds no NUL byte.
_LOGIN_MAX_LENGTH = 320


class SignInProblem(enum.Enum):
    # The same for an unknown login and a wrong password: nothing tells them apart.
    WRONG_LOGIN = "wrong_login"
    # The right password on an address not confirmed yet (SIGNIN_REQUIRES_VERIFIED_EMAIL).
    UNCONFIRMED = "unconfirmed"


@dataclass(frozen=True)
class SignedIn:
    token: str  # for the client only, never stored
    user_id: uuid.UUID
    expires_in: int  # seconds


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def login_key(login: str) -> str:
    """One spelling of a login as typed (a username or an address, any letter case)."""
    return login.strip().lower()


async def sign_in(
    session: AsyncSession,
    *,
    login: str,
    password: str,
    kind: SessionKind,
    user_agent: str | None,
    lifetime: timedelta,
    hasher: PasswordHasher,
    require_verified: bool,
) -> SignedIn | SignInProblem:
    """A new session for the account `login` names, if `password` is its password.

    A hash made with older parameters is replaced with a new one. Raises
    HashingOverloaded (before anything is written) when the hashers are saturated."""
    key = login_key(login)
    found = None
    # A login no account could have (a NUL byte, which Postgres refuses; a novel) is
    # looked up nowhere, and still costs the dummy hash below.
    if len(key) <= _LOGIN_MAX_LENGTH and "\x00" not in key:
        found = (
            await session.execute(
                select(User.id, User.password_hash, User.email_verified_at)
                .where(or_(func.lower(User.username) == key, func.lower(User.email) == key))
                .limit(1)
            )
        ).one_or_none()
        # The lookup's transaction ends here: no connection is held while the hash runs.
        await session.commit()
    matches, new_hash = await hasher.verify_and_update(
        password, found.password_hash if found else None
    )
    if found is None or not matches:
        return SignInProblem.WRONG_LOGIN
    if require_verified and found.email_verified_at is None:
        return SignInProblem.UNCONFIRMED
    token = secrets.token_urlsafe(32)
    # Only while the password is still the one just checked: a reset that committed
    # meanwhile (and revoked every session) must not be followed by a new one.
    unchanged = and_(User.id == found.id, User.password_hash == found.password_hash)
    agent = (user_agent or "").replace("\x00", "")[:USER_AGENT_MAX_LENGTH] or None
    created = await session.scalar(
        insert(UserSession)
        .from_select(
            ["user_id", "token_hash", "kind", "expires_at", "user_agent"],
            select(
                User.id,
                literal(token_digest(token), String),
                literal(kind, String),
                func.now() + literal(lifetime, Interval),
                literal(agent, String),
            ).where(unchanged),
        )
        .returning(UserSession.id)
    )
    if created is None:
        await session.rollback()
        return SignInProblem.WRONG_LOGIN
    if new_hash is not None:
        await session.execute(update(User).where(unchanged).values(password_hash=new_hash))
    await session.commit()
    return SignedIn(token=token, user_id=found.id, expires_in=int(lifetime.total_seconds()))


async def signed_in_user(
    session: AsyncSession, *, token: str, kind: SessionKind, idle: timedelta
) -> User | None:
    """The user of a live session: not revoked, not past its expiry, used within `idle`."""
    if not token or len(token) > _TOKEN_MAX_LENGTH:
        return None
    row = (
        await session.execute(
            select(User, UserSession.id, UserSession.last_seen_at, func.now())
            .join(UserSession, UserSession.user_id == User.id)
            .where(
                UserSession.token_hash == token_digest(token),
                UserSession.kind == kind,
                UserSession.revoked_at.is_(None),
                UserSession.expires_at > func.now(),
                UserSession.last_seen_at > func.now() - literal(idle, Interval),
            )
        )
    ).one_or_none()
    if row is None:
        await session.rollback()
        return None
    user, session_id, last_seen_at, now = row
    if _due_for_touch(last_seen_at, now):
        await session.execute(
            update(UserSession).where(UserSession.id == session_id).values(last_seen_at=func.now())
        )
    await session.commit()
    return user


def _due_for_touch(last_seen_at: datetime, now: datetime) -> bool:
    return now - last_seen_at >= TOUCH_EVERY


async def revoke(session: AsyncSession, *, token: str, kind: SessionKind) -> bool:
    """End the session this token opens; False when there was none live."""
    if not token or len(token) > _TOKEN_MAX_LENGTH:
        return False
    revoked = await session.scalar(
        update(UserSession)
        .where(
            UserSession.token_hash == token_digest(token),
            UserSession.kind == kind,
            UserSession.revoked_at.is_(None),
        )
        .values(revoked_at=func.now())
        .returning(UserSession.id)
    )
    await session.commit()
    return revoked is not None
