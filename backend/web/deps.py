"""Request dependencies, as `Annotated` aliases so handlers read like their signature.

Everything here is built once at start-up (the AppContext, and the WebContext on top of
it): a dependency only hands a request its share.
"""

from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass
from typing import Annotated

from fastapi import BackgroundTasks, Depends, Request
from sqlalchemy.ext.asyncio import AsyncSession

from backend.accounts.features import (
    AddressChange,
    EmailVerification,
    MailStatus,
    PasswordReset,
    Registration,
    SignIn,
    VerificationResend,
)
from backend.context import AppContext
from backend.jobs.runner import JobRunner
from backend.observability import metrics
from backend.settings import Settings
from backend.web.csrf import Csrf
from backend.web.ratelimit import ClientLimit
from backend.web.registered_cookie import RegisteredCookie
from backend.web.session_cookie import SessionCookie

# What a sign-in past SIGNIN_RATE_LIMIT is told, per client or per login alike.
TOO_MANY_SIGNINS = "Too many sign-in attempts. Please wait and try again."
TOO_MANY_SIGNINS_FORM = "Too many sign-in attempts. Please wait {seconds} seconds and try again."


@dataclass(frozen=True)
class WebContext:
    """What the web layer builds once at start-up over the AppContext: the CSRF signer,
    and the per-client limits with what their refusals say. Apart from the AppContext
    because it is the web layer's: nothing below backend.web imports it."""

    csrf: Csrf
    register_limit: ClientLimit
    resend_limit: ClientLimit
    signin_limit: ClientLimit
    password_reset_limit: ClientLimit
    session_cookie: SessionCookie
    registered_cookie: RegisteredCookie

    @classmethod
    def build(cls, context: AppContext) -> "WebContext":
        settings = context.settings
        proxies = settings.trusted_proxy_networks
        return cls(
            csrf=Csrf(
                settings.secret_key.get_secret_value(),
                secure_cookies=settings.cookies_secure,
                hosts=settings.allowed_host_names,
            ),
            register_limit=ClientLimit(
                context.register_limit,
                trusted_proxies=proxies,
                detail="Too many registration attempts. Please wait and try again.",
                form_error="Too many attempts. Please wait {seconds} seconds and try again.",
                # A refusal is one of registrations_total's outcomes, per channel.
                on_refused=lambda channel: metrics.registration(channel, "rate_limited"),
            ),
            resend_limit=ClientLimit(
                context.resend_limit,
                trusted_proxies=proxies,
                detail="Too many requests. Please wait and try again.",
                form_error="Too many requests. Please wait {seconds} seconds and try again.",
            ),
            signin_limit=ClientLimit(
                context.signin_limit,
                trusted_proxies=proxies,
                detail=TOO_MANY_SIGNINS,
                form_error=TOO_MANY_SIGNINS_FORM,
            ),
            password_reset_limit=ClientLimit(
                context.password_reset_limit,
                trusted_proxies=proxies,
                detail="Too many requests. Please wait and try again.",
                form_error="Too many requests. Please wait {seconds} seconds and try again.",
            ),
            session_cookie=SessionCookie(
                secure=settings.cookies_secure,
                max_age_seconds=settings.session_max_age_seconds,
            ),
            registered_cookie=RegisteredCookie(
                settings.secret_key.get_secret_value(), secure=settings.cookies_secure
            ),
        )


def get_context(request: Request) -> AppContext:
    context: AppContext = request.app.state.context
    return context


def get_web_context(request: Request) -> WebContext:
    web: WebContext = request.app.state.web
    return web


ContextDep = Annotated[AppContext, Depends(get_context)]
WebContextDep = Annotated[WebContext, Depends(get_web_context)]


def get_settings(context: ContextDep) -> Settings:
    return context.settings


async def get_session(context: ContextDep) -> AsyncIterator[AsyncSession]:
    async with context.sessionmaker() as session:
        yield session


@dataclass(frozen=True)
class AfterResponse:
    """Starts a request's just-committed jobs once its response is sent, so that nobody
    waits for an email; the poller is the fallback should the process die first."""

    background: BackgroundTasks
    runner: JobRunner

    def run_jobs(self, job_ids: Iterable[int]) -> None:
        # A task of its own for each call. run_now only hands the work to a task of the
        # runner's and returns, so this task cannot raise and keep a later one from running.
        self.background.add_task(self.runner.run_now, list(job_ids))


def get_after_response(context: ContextDep, background: BackgroundTasks) -> AfterResponse:
    return AfterResponse(background, context.runner)


def get_csrf(web: WebContextDep) -> Csrf:
    return web.csrf


def get_register_limit(web: WebContextDep) -> ClientLimit:
    return web.register_limit


def get_resend_limit(web: WebContextDep) -> ClientLimit:
    return web.resend_limit


def get_signin_limit(web: WebContextDep) -> ClientLimit:
    return web.signin_limit


def get_session_cookie(web: WebContextDep) -> SessionCookie:
    return web.session_cookie


def get_registered_cookie(web: WebContextDep) -> RegisteredCookie:
    return web.registered_cookie


def get_mail_status(context: ContextDep) -> MailStatus:
    return context.mail_status


def get_password_reset_limit(web: WebContextDep) -> ClientLimit:
    return web.password_reset_limit


def get_password_reset(context: ContextDep) -> PasswordReset:
    return context.password_reset


def get_address_change(context: ContextDep) -> AddressChange:
    return context.address_change


def get_sign_in(context: ContextDep) -> SignIn:
    return context.sign_in


def get_registration(context: ContextDep) -> Registration:
    return context.registration


def get_verification_resend(context: ContextDep) -> VerificationResend:
    return context.verification_resend


def get_email_verification(context: ContextDep) -> EmailVerification:
    return context.email_verification


SettingsDep = Annotated[Settings, Depends(get_settings)]
SessionDep = Annotated[AsyncSession, Depends(get_session)]
AfterResponseDep = Annotated[AfterResponse, Depends(get_after_response)]
CsrfDep = Annotated[Csrf, Depends(get_csrf)]
RegisterLimitDep = Annotated[ClientLimit, Depends(get_register_limit)]
ResendLimitDep = Annotated[ClientLimit, Depends(get_resend_limit)]
RegistrationDep = Annotated[Registration, Depends(get_registration)]
VerificationResendDep = Annotated[VerificationResend, Depends(get_verification_resend)]
EmailVerificationDep = Annotated[EmailVerification, Depends(get_email_verification)]
SigninLimitDep = Annotated[ClientLimit, Depends(get_signin_limit)]
SessionCookieDep = Annotated[SessionCookie, Depends(get_session_cookie)]
SignInDep = Annotated[SignIn, Depends(get_sign_in)]
PasswordResetLimitDep = Annotated[ClientLimit, Depends(get_password_reset_limit)]
PasswordResetDep = Annotated[PasswordReset, Depends(get_password_reset)]
AddressChangeDep = Annotated[AddressChange, Depends(get_address_change)]
RegisteredCookieDep = Annotated[RegisteredCookie, Depends(get_registered_cookie)]
MailStatusDep = Annotated[MailStatus, Depends(get_mail_status)]
