"""The browser face of email verification: the link from the email, and asking for a new one."""

from typing import Annotated

from fastapi import APIRouter, BackgroundTasks, Form, Query, Request, status
from fastapi.responses import HTMLResponse, Response
from pydantic import ValidationError

from backend.accounts.resend import request_verification_email
from backend.accounts.schemas import ResendIn
from backend.accounts.verification import Verification, verify_email
from backend.web.deps import ContextDep, CsrfDep, ResendLimitDep, SessionDep, templates
from backend.web.errors import field_messages
from backend.web.security_headers import NO_STORE

router = APIRouter(include_in_schema=False)


@router.get("/verify", response_class=HTMLResponse, dependencies=[NO_STORE])
async def verify(
    request: Request,
    context: ContextDep,
    session: SessionDep,
    background: BackgroundTasks,
    token: Annotated[str, Query()] = "",
) -> Response:
    result = await verify_email(session, token=token, tokens=context.tokens)
    if result.job_ids:
        background.add_task(context.runner.run_now, list(result.job_ids))
    status_code = {
        Verification.VERIFIED: status.HTTP_200_OK,
        Verification.ALREADY_VERIFIED: status.HTTP_200_OK,
        Verification.EXPIRED: status.HTTP_410_GONE,
        Verification.INVALID: status.HTTP_400_BAD_REQUEST,
    }[result.status]
    return templates.TemplateResponse(
        request,
        "verify.html",
        {
            "status": result.status.value,
            "username": result.username,
            "link_lifetime": context.tokens.lifetime,
        },
        status_code=status_code,
    )


def _resend_form(
    request: Request,
    csrf: CsrfDep,
    *,
    status_code: int = status.HTTP_200_OK,
    email: str = "",
    errors: dict[str, str] | None = None,
    form_error: str | None = None,
) -> Response:
    token, new_cookie = csrf.issue(request)
    response = templates.TemplateResponse(
        request,
        "resend.html",
        {"email": email, "errors": errors or {}, "form_error": form_error, "csrf_token": token},
        status_code=status_code,
    )
    if new_cookie:
        csrf.set_cookie(response, new_cookie)
    return response


@router.get("/verify/resend", response_class=HTMLResponse, dependencies=[NO_STORE])
async def resend_form(request: Request, csrf: CsrfDep) -> Response:
    return _resend_form(request, csrf)


@router.post("/verify/resend", response_class=HTMLResponse, dependencies=[NO_STORE])
async def resend_submit(
    request: Request,
    context: ContextDep,
    session: SessionDep,
    csrf: CsrfDep,
    background: BackgroundTasks,
    resend_limit: ResendLimitDep,
    email: Annotated[str, Form()] = "",
    csrf_token: Annotated[str, Form()] = "",
) -> Response:
    if not csrf.is_valid(request, csrf_token):
        return _resend_form(
            request,
            csrf,
            status_code=status.HTTP_403_FORBIDDEN,
            email=email,
            form_error="This form expired or did not come from this site. Please submit it again.",
        )
    # Per client, before the address is even read: the same count whatever it is.
    if (retry_after := await resend_limit.retry_after(request)) is not None:
        response = _resend_form(
            request,
            csrf,
            status_code=status.HTTP_429_TOO_MANY_REQUESTS,
            email=email,
            form_error=f"Too many requests. Please wait {retry_after} seconds and try again.",
        )
        response.headers["Retry-After"] = str(retry_after)
        return response
    try:
        data = ResendIn(email=email)
    except ValidationError as exc:
        return _resend_form(
            request,
            csrf,
            status_code=status.HTTP_422_UNPROCESSABLE_CONTENT,
            email=email,
            errors=field_messages(exc),
        )
    requested = await request_verification_email(
        session,
        email=str(data.email),
        channel="form",
        sender_address=context.settings.mail_from,
        mail_limit=context.mail_limit,
    )
    # Added whether or not anything was queued (run_now ignores an empty list): the same
    # path either way.
    background.add_task(context.runner.run_now, list(requested.job_ids))
    # The same page for every address: it says what happens if the account exists.
    return templates.TemplateResponse(
        request,
        "resend_sent.html",
        {"email": str(data.email), "link_lifetime": context.tokens.lifetime},
    )
