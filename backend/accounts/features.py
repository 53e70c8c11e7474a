"""The account features as the app wires them, once, at start-up (`AppContext.build`).

Each holds what it needs from the settings and the shared parts (the hasher, the mail
budget, the tokens), so that a route, the API's or the form's, makes one call with only
what its request brought. The work itself stays in the modules named here, as plain
functions that tests and tools call with every argument.
"""

import logging
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from backend.accounts import (
    email_change,
    email_change_apply,
    mail_status,
    password_reset,
    resend,
    service,
    signin,
    verification,
)
from backend.accounts.email_change_links import Purpose
from backend.accounts.mail_limit import MailLimit
from backend.accounts.passwords import PasswordHasher
from backend.accounts.schemas import RegistrationIn
from backend.accounts.signin_limit import AccountSigninLimit
from backend.accounts.tokens import VerificationTokens
from backend.models import User
from backend.observability import metrics
from backend.ratelimits import Limiter

log = logging.getLogger(__name__)


@dataclass(frozen=True, kw_only=True)
class Registration:
    """`service.register` with MAIL_FROM, MAIL_SMTPUTF8, REGISTRATION_ENUMERATION_SAFE and
    the squatting grace already applied."""

    sender_address: str
    smtputf8: bool
    hasher: PasswordHasher
    mail_limit: MailLimit
    enumeration_safe: bool
    replace_unverified_after: timedelta | None

    async def register(
        self, session: AsyncSession, *, data: RegistrationIn, channel: metrics.Channel
    ) -> service.Registered:
        """See `service.register`: raises RegistrationRefused, HashingOverloaded."""
        return await service.register(
            session,
            data=data,
            channel=channel,
            sender_address=self.sender_address,
            smtputf8=self.smtputf8,
            hasher=self.hasher,
            mail_limit=self.mail_limit,
            enumeration_safe=self.enumeration_safe,
            replace_unverified_after=self.replace_unverified_after,
        )


@dataclass(frozen=True, kw_only=True)
class VerificationResend:
    """`resend.request_verification_email` with MAIL_FROM and the mail budget applied."""

    sender_address: str
    mail_limit: MailLimit

    async def request(
        self, session: AsyncSession, *, email: str, channel: metrics.Channel
    ) -> resend.ResendRequested:
        return await resend.request_verification_email(
            session,
            email=email,
            channel=channel,
            sender_address=self.sender_address,
            mail_limit=self.mail_limit,
        )


@dataclass(frozen=True, kw_only=True)
class EmailVerification:
    """`verification.verify_email` with the app's token signer applied."""

    tokens: VerificationTokens

    async def check(self, session: AsyncSession, *, token: str) -> verification.VerificationResult:
        """Read only: what confirming with this link would do (see `check_link`)."""
        return await verification.check_link(session, token=token, tokens=self.tokens)

    async def verify(self, session: AsyncSession, *, token: str) -> verification.VerificationResult:
        return await verification.verify_email(session, token=token, tokens=self.tokens)

    @property
    def link_lifetime(self) -> str:
        """How long a link works, in words ("48 hours"), for the pages that mention it."""
        return self.tokens.lifetime


class TooManySignIns(Exception):
    """The login was tried SIGNIN_RATE_LIMIT times lately (whether or not an account has
    it); another try may come in `retry_after` seconds."""

    def __init__(self, retry_after: int) -> None:
        super().__init__(f"too many sign-in attempts; retry after {retry_after}s")
        self.retry_after = retry_after


@dataclass(frozen=True, kw_only=True)
class SignIn:
    """`signin` with the hasher, the per-account limit, SIGNIN_REQUIRES_VERIFIED_EMAIL and
    the session lifetimes (SESSION_MAX_AGE_SECONDS, SESSION_IDLE_SECONDS,
    API_TOKEN_MAX_AGE_SECONDS) applied."""

    hasher: PasswordHasher
    account_limit: AccountSigninLimit
    require_verified: bool
    browser_lifetime: timedelta
    bearer_lifetime: timedelta
    idle: timedelta

    async def sign_in(
        self,
        session: AsyncSession,
        *,
        login: str,
        password: str,
        kind: signin.SessionKind,
        user_agent: str | None,
    ) -> signin.SignedIn | signin.SignInProblem:
        """Raises TooManySignIns past the login's limit (before any lookup or hash), and
        HashingOverloaded when the hashers are saturated."""
        if wait := await self.account_limit.retry_after(login=login):
            raise TooManySignIns(wait)
        lifetime = self.browser_lifetime if kind == "browser" else self.bearer_lifetime
        return await signin.sign_in(
            session,
            login=login,
            password=password,
            kind=kind,
            user_agent=user_agent,
            lifetime=lifetime,
            hasher=self.hasher,
            require_verified=self.require_verified,
        )

    async def user(
        self, session: AsyncSession, *, token: str, kind: signin.SessionKind
    ) -> User | None:
        """The signed-in user of this token, or None (unknown, expired, idle, revoked)."""
        return await signin.signed_in_user(session, token=token, kind=kind, idle=self.idle)

    async def sign_out(
        self, session: AsyncSession, *, token: str, kind: signin.SessionKind
    ) -> bool:
        return await signin.revoke(session, token=token, kind=kind)


@dataclass(frozen=True, kw_only=True)
class PasswordReset:
    """`password_reset` with MAIL_FROM, the mail budget, PASSWORD_RESET_RATE_LIMIT per
    address and the hasher applied; a completed reset clears the account's sign-in counts."""

    sender_address: str
    mail_limit: MailLimit
    address_limit: Limiter
    hasher: PasswordHasher
    account_limit: AccountSigninLimit
    # PASSWORD_RESET_TOKEN_TTL in words ("1 hour"), for the pages that mention it.
    link_lifetime: str

    async def request(
        self, session: AsyncSession, *, email: str, channel: metrics.Channel
    ) -> tuple[int, ...]:
        """The job ids to start (empty when nothing was queued: never for the answer)."""
        return await password_reset.request_password_reset(
            session,
            email=email,
            channel=channel,
            sender_address=self.sender_address,
            mail_limit=self.mail_limit,
            address_limit=self.address_limit,
        )

    async def check(self, session: AsyncSession, *, token: str) -> password_reset.ResetResult:
        """Read only: what the link would do (see `check_reset_link`)."""
        return await password_reset.check_reset_link(session, token=token)

    async def reset(
        self, session: AsyncSession, *, token: str, password: str, channel: metrics.Channel
    ) -> password_reset.ResetResult:
        result = await password_reset.reset_password(
            session,
            token=token,
            password=password,
            channel=channel,
            hasher=self.hasher,
            sender_address=self.sender_address,
        )
        if result.status is password_reset.ResetLink.DONE:
            # After the commit, and not fatal: the password is changed either way.
            try:
                await self.account_limit.clear(logins=result.logins)
                if result.email:
                    await self.mail_limit.count_sent(address=result.email)
            except Exception:
                log.warning("a reset's counts could not be updated", exc_info=True)
        return result


@dataclass(frozen=True, kw_only=True)
class AddressChange:
    """`email_change` with MAIL_FROM, MAIL_SMTPUTF8, the hasher, the mail budget and the
    per-account SIGNIN_RATE_LIMIT (the password is checked as a sign-in checks it)
    applied; the link lifetimes in words for the pages."""

    sender_address: str
    smtputf8: bool
    hasher: PasswordHasher
    mail_limit: MailLimit
    account_limit: AccountSigninLimit
    # EMAIL_CHANGE_LINK_HOURS and EMAIL_CHANGE_REVERT_DAYS in words ("24 hours", "7 days").
    link_lifetime: str
    revert_lifetime: str

    async def request(
        self,
        session: AsyncSession,
        *,
        user: User,
        email: str,
        password: str,
        channel: metrics.Channel,
    ) -> email_change.ChangeRequested:
        """Raises TooManySignIns past the account's sign-in limit (before the hash),
        ChangeRefused (422) and HashingOverloaded."""
        if wait := await self.account_limit.retry_after(login=user.username):
            raise TooManySignIns(wait)
        result = await email_change.request_email_change(
            session,
            user=user,
            new_email=email,
            password=password,
            channel=channel,
            hasher=self.hasher,
            mail_limit=self.mail_limit,
            sender_address=self.sender_address,
            smtputf8=self.smtputf8,
        )
        if result.notified:
            # The notice to the old address goes whatever its budget says (its owner must
            # hear of the change); counted, so later mail to it finds the budget used.
            try:
                await self.mail_limit.count_sent(address=result.notified)
            except Exception:
                log.warning("an address change notice could not be counted", exc_info=True)
        return result

    async def check(
        self, session: AsyncSession, *, token: str, purpose: Purpose
    ) -> email_change.ChangeLinkResult:
        """Read only: what the link would do (see `check_change_link`)."""
        return await email_change.check_change_link(session, token=token, purpose=purpose)

    async def confirm(
        self, session: AsyncSession, *, token: str, channel: metrics.Channel
    ) -> email_change.ChangeLinkResult:
        return await email_change_apply.confirm_change(session, token=token, channel=channel)

    async def revert(
        self, session: AsyncSession, *, token: str, channel: metrics.Channel
    ) -> email_change.ChangeLinkResult:
        return await email_change_apply.revert_change(session, token=token, channel=channel)


class MailStatus:
    """`mail_status`, with how many emails a person is shown: what became of the emails
    queued for them, read from the outbox (no work added to sending)."""

    limit: int = mail_status.DEFAULT_LIMIT

    async def of_user(self, session: AsyncSession, *, user: User) -> list[mail_status.MailState]:
        return await mail_status.emails_of(session, user=user, limit=self.limit)

    async def of_job(self, session: AsyncSession, *, job_id: int) -> mail_status.MailState | None:
        """Only for a caller holding a proof that this job is theirs (a signed cookie)."""
        return await mail_status.email_by_id(session, job_id=job_id)
