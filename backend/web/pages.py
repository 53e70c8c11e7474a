"""The browser face: the registration form and its confirmation page (the verification
pages are in verification_pages.py)."""

from typing import Annotated, Any

from fastapi import APIRouter, BackgroundTasks, Form, Request, status
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from itsdangerous import BadSignature, URLSafeTimedSerializer
from pydantic import ValidationError

from backend.accounts.schemas import RegistrationIn
from backend.accounts.service import DuplicateUserError, RegistrationRefused, register
from backend.observability import metrics
from backend.web.deps import ContextDep, RegisterLimitDep, SessionDep, get_csrf, templates
from backend.web.errors import field_messages
from backend.web.security_headers import NO_STORE

router = APIRouter(include_in_schema=False)

_REGISTERED_COOKIE = "registered"


def _form_page(
    request: Request,
    context: ContextDep,
    *,
    status_code: int = status.HTTP_200_OK,
    values: dict[str, str] | None = None,
    errors: dict[str, str] | None = None,
    form_error: str | None = None,
    email_taken: bool = False,
) -> Response:
    csrf = get_csrf(context)
    token, new_cookie = csrf.issue(request)
    response = templates.TemplateResponse(
        request,
        "register.html",
        {
            "values": values or {},
            "errors": errors or {},
            "form_error": form_error,
            "csrf_token": token,
            # The taken-email message leads to the resend page.
            "email_taken": email_taken,
        },
        status_code=status_code,
    )
    if new_cookie:
        csrf.set_cookie(response, new_cookie)
    return response


@router.get("/")
async def home() -> RedirectResponse:
    return RedirectResponse("/register", status_code=status.HTTP_303_SEE_OTHER)


@router.get("/register", response_class=HTMLResponse, dependencies=[NO_STORE])
async def register_form(request: Request, context: ContextDep) -> Response:
    return _form_page(request, context)


@router.post("/register", response_class=HTMLResponse, dependencies=[NO_STORE])
async def register_submit(
    request: Request,
    context: ContextDep,
    session: SessionDep,
    background: BackgroundTasks,
    register_limit: RegisterLimitDep,
    username: Annotated[str, Form()] = "",
    email: Annotated[str, Form()] = "",
    password: Annotated[str, Form()] = "",
    csrf_token: Annotated[str, Form()] = "",
) -> Response:
    # The password is never echoed back into the form.
    values = {"username": username, "email": email}
    if not get_csrf(context).is_valid(request, csrf_token):
        metrics.registration("form", "csrf_refused")
        return _form_page(
            request,
            context,
            status_code=status.HTTP_403_FORBIDDEN,
            values=values,
            form_error="This form expired or did not come from this site. Please submit it again.",
        )
    if (retry_after := await register_limit.retry_after(request)) is not None:
        metrics.registration("form", "rate_limited")
        response = _form_page(
            request,
            context,
            status_code=status.HTTP_429_TOO_MANY_REQUESTS,
            values=values,
            form_error=f"Too many attempts. Please wait {retry_after} seconds and try again.",
        )
        response.headers["Retry-After"] = str(retry_after)
        return response
    try:
        data = RegistrationIn(username=username, email=email, password=password)
    except ValidationError as exc:
        metrics.registration("form", "invalid")
        return _form_page(
            request,
            context,
            status_code=status.HTTP_422_UNPROCESSABLE_CONTENT,
            values=values,
            errors=field_messages(exc),
        )
    settings = context.settings
    try:
        registered = await register(
            session,
            data=data,
            channel="form",
            sender_address=settings.mail_from,
            smtputf8=settings.mail_smtputf8,
            hasher=context.hasher,
            mail_limit=context.mail_limit,
            enumeration_safe=settings.registration_enumeration_safe,
            replace_unverified_after=settings.unverified_replaceable_after,
        )
    except RegistrationRefused as exc:
        duplicate = isinstance(exc, DuplicateUserError)
        return _form_page(
            request,
            context,
            status_code=409 if duplicate else 422,
            values=values,
            errors=exc.fields,
            email_taken=duplicate and "email" in exc.fields,
        )
    background.add_task(context.runner.run_now, registered.job_ids)
    response = RedirectResponse("/register/done", status_code=status.HTTP_303_SEE_OTHER)
    response.set_cookie(
        _REGISTERED_COOKIE,
        _registered_signer(context).dumps(
            {"username": registered.user.username, "email": registered.user.email}
        ),
        max_age=600,
        httponly=True,
        samesite="lax",
        secure=settings.cookies_secure,
    )
    return response


# No-store: it shows the address just registered.
@router.get("/register/done", response_class=HTMLResponse, dependencies=[NO_STORE])
async def register_done(request: Request, context: ContextDep) -> Response:
    who: dict[str, Any] | None = None
    try:
        who = _registered_signer(context).loads(
            request.cookies.get(_REGISTERED_COOKIE, ""), max_age=600
        )
    except BadSignature:
        who = None
    return templates.TemplateResponse(
        request, "registered.html", {"who": who, "link_lifetime": context.tokens.lifetime}
    )


def _registered_signer(context: ContextDep) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(context.settings.secret_key.get_secret_value(), salt="registered")
