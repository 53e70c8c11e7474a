"""The browser face of the password reset: the forgot form, and the link's page.

The link from the email only shows a form (GET changes nothing and never uses the token
up: mail scanners open every link); the form's POST sets the new password.
"""

from typing import Annotated

from fastapi import APIRouter, Form, Query, Request, status
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import ValidationError

from backend.accounts.password_reset import ResetLink, ResetResult
from backend.accounts.schemas import PasswordForgotIn, PasswordResetIn
from backend.web.csrf import FORM_REFUSED
from backend.web.deps import (
    AfterResponseDep,
    CsrfDep,
    PasswordResetDep,
    PasswordResetLimitDep,
    SessionDep,
)
from backend.web.errors import field_messages
from backend.web.rendering import FormPage, render_form, templates
from backend.web.security_headers import NO_STORE

router = APIRouter(include_in_schema=False)

# Where a completed reset leads: the login form, with a notice (login_form reads it).
DONE_REDIRECT = "/login?reset=done"


def _forgot_page(
    email: str = "", *, errors: dict[str, str] | None = None, form_error: str | None = None
) -> FormPage:
    return FormPage(
        "password_forgot.html", {"email": email, "errors": errors or {}, "form_error": form_error}
    )


def _reset_page(
    result: ResetResult, *, token: str, lifetime: str, errors: dict[str, str] | None = None
) -> FormPage:
    return FormPage(
        "password_reset.html",
        {
            "status": result.status.value,
            "username": result.username,
            "token": token,
            "link_lifetime": lifetime,
            "errors": errors or {},
        },
    )


def _status_code(result: ResetResult) -> int:
    # Expired, used and forged links alike: a friendly page, 400.
    return status.HTTP_200_OK if result.status is ResetLink.VALID else status.HTTP_400_BAD_REQUEST


@router.get("/password/forgot", response_class=HTMLResponse, dependencies=[NO_STORE])
async def forgot_form(request: Request, csrf: CsrfDep) -> Response:
    return render_form(request, csrf, _forgot_page())


@router.post("/password/forgot", response_class=HTMLResponse, dependencies=[NO_STORE])
async def forgot_submit(
    request: Request,
    session: SessionDep,
    csrf: CsrfDep,
    reset_limit: PasswordResetLimitDep,
    password_reset: PasswordResetDep,
    after_response: AfterResponseDep,
    email: Annotated[str, Form()] = "",
    csrf_token: Annotated[str, Form()] = "",
) -> Response:
    if not csrf.is_valid(request, csrf_token, form="password_forgot.html"):
        page = _forgot_page(email, form_error=FORM_REFUSED)
        return render_form(request, csrf, page, status_code=status.HTTP_403_FORBIDDEN)
    # Per client, before the address is even read: the same count whatever it is.
    await reset_limit.check(request, channel="form", form=_forgot_page(email))
    try:
        data = PasswordForgotIn(email=email)
    except ValidationError as exc:
        page = _forgot_page(email, errors=field_messages(exc))
        return render_form(request, csrf, page, status_code=status.HTTP_422_UNPROCESSABLE_CONTENT)
    job_ids = await password_reset.request(session, email=str(data.email), channel="form")
    after_response.run_jobs(job_ids)
    # The same page for every address: it says what happens if an account has it.
    return templates.TemplateResponse(
        request,
        "password_forgot_sent.html",
        {"email": str(data.email), "link_lifetime": password_reset.link_lifetime},
    )


@router.get("/password/reset", response_class=HTMLResponse, dependencies=[NO_STORE])
async def reset_link(
    request: Request,
    session: SessionDep,
    csrf: CsrfDep,
    password_reset: PasswordResetDep,
    token: Annotated[str, Query()] = "",
) -> Response:
    result = await password_reset.check(session, token=token)
    page = _reset_page(result, token=token, lifetime=password_reset.link_lifetime)
    return render_form(request, csrf, page, status_code=_status_code(result))


@router.post("/password/reset", response_class=HTMLResponse, dependencies=[NO_STORE])
async def reset_submit(
    request: Request,
    session: SessionDep,
    csrf: CsrfDep,
    password_reset: PasswordResetDep,
    after_response: AfterResponseDep,
    token: Annotated[str, Form()] = "",
    password: Annotated[str, Form()] = "",
    csrf_token: Annotated[str, Form()] = "",
) -> Response:
    lifetime = password_reset.link_lifetime
    if not csrf.is_valid(request, csrf_token, form="password_reset.html"):
        result = await password_reset.check(session, token=token)
        page = _reset_page(result, token=token, lifetime=lifetime).with_error(FORM_REFUSED)
        return render_form(request, csrf, page, status_code=status.HTTP_403_FORBIDDEN)
    try:
        data = PasswordResetIn(token=token, password=password)
    except ValidationError as exc:
        result = await password_reset.check(session, token=token)
        errors = field_messages(exc)
        if result.status is not ResetLink.VALID or "password" not in errors:
            return render_form(
                request,
                csrf,
                _reset_page(result, token=token, lifetime=lifetime),
                status_code=_status_code(result),
            )
        page = _reset_page(result, token=token, lifetime=lifetime, errors=errors)
        return render_form(request, csrf, page, status_code=status.HTTP_422_UNPROCESSABLE_CONTENT)
    result = await password_reset.reset(
        session, token=data.token, password=data.password, channel="form"
    )
    if result.status is not ResetLink.DONE:
        page = _reset_page(result, token=token, lifetime=lifetime)
        return render_form(request, csrf, page, status_code=status.HTTP_400_BAD_REQUEST)
    after_response.run_jobs(result.job_ids)
    return RedirectResponse(DONE_REDIRECT, status_code=status.HTTP_303_SEE_OTHER)
