"""The browser face of email verification: the link from the email, and asking for a new one."""

from typing import Annotated

from fastapi import APIRouter, Form, Query, Request, status
from fastapi.responses import HTMLResponse, Response
from pydantic import ValidationError

from backend.accounts.schemas import ResendIn
from backend.accounts.verification import Verification, VerificationResult
from backend.web.csrf import FORM_REFUSED
from backend.web.deps import (
    AfterResponseDep,
    CsrfDep,
    EmailVerificationDep,
    ResendLimitDep,
    SessionDep,
    VerificationResendDep,
)
from backend.web.errors import field_messages
from backend.web.rendering import FormPage, render_form, templates
from backend.web.security_headers import NO_STORE

router = APIRouter(include_in_schema=False)


_STATUS_CODES = {
    Verification.PENDING: status.HTTP_200_OK,
    Verification.VERIFIED: status.HTTP_200_OK,
    Verification.ALREADY_VERIFIED: status.HTTP_200_OK,
    Verification.EXPIRED: status.HTTP_410_GONE,
    Verification.INVALID: status.HTTP_400_BAD_REQUEST,
}


def _verify_page(result: VerificationResult, *, token: str, link_lifetime: str) -> FormPage:
    return FormPage(
        "verify.html",
        {
            "status": result.status.value,
            "username": result.username,
            "token": token,
            "link_lifetime": link_lifetime,
        },
    )


# The link from the email. It only shows the account and a button: mail scanners open
# every link, and a GET that confirmed would confirm addresses nobody had read.
@router.get("/verify", response_class=HTMLResponse, dependencies=[NO_STORE])
async def verify_link(
    request: Request,
    session: SessionDep,
    csrf: CsrfDep,
    email_verification: EmailVerificationDep,
    token: Annotated[str, Query()] = "",
) -> Response:
    result = await email_verification.check(session, token=token)
    page = _verify_page(result, token=token, link_lifetime=email_verification.link_lifetime)
    return render_form(request, csrf, page, status_code=_STATUS_CODES[result.status])


@router.post("/verify", response_class=HTMLResponse, dependencies=[NO_STORE])
async def verify_submit(
    request: Request,
    session: SessionDep,
    csrf: CsrfDep,
    email_verification: EmailVerificationDep,
    after_response: AfterResponseDep,
    token: Annotated[str, Form()] = "",
    csrf_token: Annotated[str, Form()] = "",
) -> Response:
    lifetime = email_verification.link_lifetime
    if not csrf.is_valid(request, csrf_token, form="verify.html"):
        result = await email_verification.check(session, token=token)
        page = _verify_page(result, token=token, link_lifetime=lifetime)
        return render_form(
            request, csrf, page.with_error(FORM_REFUSED), status_code=status.HTTP_403_FORBIDDEN
        )
    result = await email_verification.verify(session, token=token)
    after_response.run_jobs(result.job_ids)
    page = _verify_page(result, token=token, link_lifetime=lifetime)
    return render_form(request, csrf, page, status_code=_STATUS_CODES[result.status])


def _resend_page(
    email: str = "", *, errors: dict[str, str] | None = None, form_error: str | None = None
) -> FormPage:
    return FormPage(
        "resend.html", {"email": email, "errors": errors or {}, "form_error": form_error}
    )


@router.get("/verify/resend", response_class=HTMLResponse, dependencies=[NO_STORE])
async def resend_form(request: Request, csrf: CsrfDep) -> Response:
    return render_form(request, csrf, _resend_page())


@router.post("/verify/resend", response_class=HTMLResponse, dependencies=[NO_STORE])
async def resend_submit(
    request: Request,
    session: SessionDep,
    csrf: CsrfDep,
    resend_limit: ResendLimitDep,
    verification_resend: VerificationResendDep,
    email_verification: EmailVerificationDep,
    after_response: AfterResponseDep,
    email: Annotated[str, Form()] = "",
    csrf_token: Annotated[str, Form()] = "",
) -> Response:
    if not csrf.is_valid(request, csrf_token, form="resend.html"):
        page = _resend_page(email, form_error=FORM_REFUSED)
        return render_form(request, csrf, page, status_code=status.HTTP_403_FORBIDDEN)
    # Per client, before the address is even read: the same count whatever it is.
    await resend_limit.check(request, channel="form", form=_resend_page(email))
    try:
        data = ResendIn(email=email)
    except ValidationError as exc:
        page = _resend_page(email, errors=field_messages(exc))
        return render_form(request, csrf, page, status_code=status.HTTP_422_UNPROCESSABLE_CONTENT)
    requested = await verification_resend.request(session, email=str(data.email), channel="form")
    # Whether or not anything was queued (run_now ignores none): the same path either way.
    after_response.run_jobs(requested.job_ids)
    # The same page for every address: it says what happens if the account exists.
    return templates.TemplateResponse(
        request,
        "resend_sent.html",
        {"email": str(data.email), "link_lifetime": email_verification.link_lifetime},
    )
