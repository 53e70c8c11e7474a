"""The browser face of signing in: /login, /logout and /account.

The session is a server-side row (accounts/signin.py); the browser holds only its opaque
token, in the cookie `web/session_cookie.py` describes. The login form has a CSRF token
like every form (login CSRF: another site must not sign a browser into its own account).
"""

from typing import Annotated

from fastapi import APIRouter, Form, Query, Request, status
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy.ext.asyncio import AsyncSession

from backend.accounts.features import MailStatus, TooManySignIns
from backend.accounts.signin import SignInProblem
from backend.models import User
from backend.web.csrf import FORM_REFUSED
from backend.web.deps import (
    TOO_MANY_SIGNINS,
    TOO_MANY_SIGNINS_FORM,
    CsrfDep,
    MailStatusDep,
    SessionCookieDep,
    SessionDep,
    SignInDep,
    SigninLimitDep,
)
from backend.web.ratelimit import RateLimited
from backend.web.rendering import FormPage, render_form
from backend.web.security_headers import NO_STORE

router = APIRouter(include_in_schema=False)

WRONG_LOGIN = "Incorrect username, email or password."
UNCONFIRMED = "Please confirm your email address first: follow the link we emailed you."


PASSWORD_CHANGED = "Your password was changed. Sign in with the new one."


def _login_page(login: str = "", *, unconfirmed: bool = False, notice: str = "") -> FormPage:
    # Never the password: the form comes back with the login as typed only.
    return FormPage("login.html", {"login": login, "unconfirmed": unconfirmed, "notice": notice})


async def account_page(session: AsyncSession, mail_status: MailStatus, user: User) -> FormPage:
    return FormPage(
        "account.html",
        {
            "username": user.username,
            "email": user.email,
            "verified": user.email_verified_at is not None,
            # "Your emails": what became of each (accounts/mail_status.py).
            "emails": await mail_status.of_user(session, user=user),
        },
    )


def _see_other(path: str) -> RedirectResponse:
    return RedirectResponse(path, status_code=status.HTTP_303_SEE_OTHER)


@router.get("/login", response_class=HTMLResponse, dependencies=[NO_STORE])
async def login_form(
    request: Request, csrf: CsrfDep, reset: Annotated[str, Query(max_length=16)] = ""
) -> Response:
    # `?reset=done`: where a completed password reset leads (web/password_pages.py).
    notice = PASSWORD_CHANGED if reset == "done" else ""
    return render_form(request, csrf, _login_page(notice=notice))


@router.post("/login", response_class=HTMLResponse, dependencies=[NO_STORE])
async def login_submit(
    request: Request,
    session: SessionDep,
    csrf: CsrfDep,
    signin_limit: SigninLimitDep,
    sign_in: SignInDep,
    cookie: SessionCookieDep,
    login: Annotated[str, Form()] = "",
    password: Annotated[str, Form()] = "",
    csrf_token: Annotated[str, Form()] = "",
) -> Response:
    page = _login_page(login)
    if not csrf.is_valid(request, csrf_token, form="login.html"):
        return render_form(
            request, csrf, page.with_error(FORM_REFUSED), status_code=status.HTTP_403_FORBIDDEN
        )
    await signin_limit.check(request, channel="form", form=page)
    try:
        result = await sign_in.sign_in(
            session,
            login=login,
            password=password,
            kind="browser",
            user_agent=request.headers.get("user-agent"),
        )
    except TooManySignIns as exc:
        message = TOO_MANY_SIGNINS_FORM.format(seconds=exc.retry_after)
        refused = page.with_error(message)
        raise RateLimited(exc.retry_after, detail=TOO_MANY_SIGNINS, form=refused) from exc
    if result is SignInProblem.UNCONFIRMED:
        page = _login_page(login, unconfirmed=True).with_error(UNCONFIRMED)
        return render_form(request, csrf, page, status_code=status.HTTP_403_FORBIDDEN)
    if isinstance(result, SignInProblem):
        page = page.with_error(WRONG_LOGIN)
        return render_form(request, csrf, page, status_code=status.HTTP_401_UNAUTHORIZED)
    # A new token at each sign-in; the one this browser held before (if any) ends.
    if previous := cookie.read(request):
        await sign_in.sign_out(session, token=previous, kind="browser")
    response = _see_other("/account")
    cookie.set(response, result.token)
    return response


@router.get("/account", response_class=HTMLResponse, dependencies=[NO_STORE])
async def account(
    request: Request,
    session: SessionDep,
    csrf: CsrfDep,
    sign_in: SignInDep,
    cookie: SessionCookieDep,
    mail_status: MailStatusDep,
) -> Response:
    user = await sign_in.user(session, token=cookie.read(request), kind="browser")
    if user is None:
        return _see_other("/login")
    return render_form(request, csrf, await account_page(session, mail_status, user))


@router.post("/logout", response_class=HTMLResponse, dependencies=[NO_STORE])
async def logout(
    request: Request,
    session: SessionDep,
    csrf: CsrfDep,
    sign_in: SignInDep,
    cookie: SessionCookieDep,
    mail_status: MailStatusDep,
    csrf_token: Annotated[str, Form()] = "",
) -> Response:
    token = cookie.read(request)
    # The sign-out button is on the account page: its token is that form's.
    if not csrf.is_valid(request, csrf_token, form="account.html"):
        user = await sign_in.user(session, token=token, kind="browser")
        if user is None:
            return _see_other("/login")
        page = (await account_page(session, mail_status, user)).with_error(FORM_REFUSED)
        return render_form(request, csrf, page, status_code=status.HTTP_403_FORBIDDEN)
    await sign_in.sign_out(session, token=token, kind="browser")
    response = _see_other("/login")
    cookie.clear(response)
    return response
