"""The browser face: the registration form (its confirmation page is registered_page.py,
the verification pages are in verification_pages.py)."""

from typing import Annotated

from fastapi import APIRouter, Form, Request, status
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import ValidationError

from backend.accounts.schemas import RegistrationIn
from backend.accounts.service import DuplicateUserError, MailboxBudgetUsed, RegistrationRefused
from backend.observability import metrics
from backend.web.csrf import FORM_REFUSED
from backend.web.deps import (
    AfterResponseDep,
    CsrfDep,
    RegisteredCookieDep,
    RegisterLimitDep,
    RegistrationDep,
    SessionDep,
)
from backend.web.errors import field_messages
from backend.web.ratelimit import RateLimited
from backend.web.rendering import FormPage, render_form
from backend.web.security_headers import NO_STORE

router = APIRouter(include_in_schema=False)


def _register_page(
    values: dict[str, str] | None = None,
    *,
    errors: dict[str, str] | None = None,
    form_error: str | None = None,
    email_taken: bool = False,
) -> FormPage:
    return FormPage(
        "register.html",
        {
            "values": values or {},
            "errors": errors or {},
            "form_error": form_error,
            # The taken-email message leads to the resend page.
            "email_taken": email_taken,
        },
    )


@router.get("/")
async def home() -> RedirectResponse:
    return RedirectResponse("/register", status_code=status.HTTP_303_SEE_OTHER)


@router.get("/register", response_class=HTMLResponse, dependencies=[NO_STORE])
async def register_form(request: Request, csrf: CsrfDep) -> Response:
    return render_form(request, csrf, _register_page())


@router.post("/register", response_class=HTMLResponse, dependencies=[NO_STORE])
async def register_submit(
    request: Request,
    session: SessionDep,
    csrf: CsrfDep,
    register_limit: RegisterLimitDep,
    registration: RegistrationDep,
    after_response: AfterResponseDep,
    registered_cookie: RegisteredCookieDep,
    username: Annotated[str, Form()] = "",
    email: Annotated[str, Form()] = "",
    password: Annotated[str, Form()] = "",
    csrf_token: Annotated[str, Form()] = "",
) -> Response:
    # The password is never echoed back into the form.
    values = {"username": username, "email": email}
    if not csrf.is_valid(request, csrf_token, form="register.html"):
        metrics.registration("form", "csrf_refused")
        page = _register_page(values, form_error=FORM_REFUSED)
        return render_form(request, csrf, page, status_code=status.HTTP_403_FORBIDDEN)
    await register_limit.check(request, channel="form", form=_register_page(values))
    try:
        data = RegistrationIn(username=username, email=email, password=password)
    except ValidationError as exc:
        metrics.registration("form", "invalid")
        page = _register_page(values, errors=field_messages(exc))
        return render_form(request, csrf, page, status_code=status.HTTP_422_UNPROCESSABLE_CONTENT)
    try:
        registered = await registration.register(session, data=data, channel="form")
    except MailboxBudgetUsed as exc:
        page = _register_page(values, errors={"email": str(exc)})
        raise RateLimited(exc.retry_after, detail=str(exc), form=page) from exc
    except RegistrationRefused as exc:
        duplicate = isinstance(exc, DuplicateUserError)
        page = _register_page(
            values, errors=exc.fields, email_taken=duplicate and "email" in exc.fields
        )
        return render_form(request, csrf, page, status_code=409 if duplicate else 422)
    after_response.run_jobs(registered.job_ids)
    response = RedirectResponse("/register/done", status_code=status.HTTP_303_SEE_OTHER)
    # The confirmation page (registered_page.py) shows this browser its welcome email.
    registered_cookie.set(
        response,
        username=registered.user.username,
        email=registered.user.email,
        email_job_id=registered.email_job_id,
    )
    return response
