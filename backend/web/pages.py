"""The browser face: the registration form, its confirmation page, email verification."""

from typing import Annotated, Any

from fastapi import APIRouter, BackgroundTasks, Form, Query, Request, status
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from itsdangerous import BadSignature, URLSafeTimedSerializer
from pydantic import ValidationError

from backend.accounts.schemas import RegistrationIn
from backend.accounts.service import (
    DuplicateUserError,
    RegistrationRefused,
    Verification,
    register,
    verify_email,
)
from backend.web.csrf import Csrf
from backend.web.deps import ContextDep, LimiterDep, SessionDep, templates
from backend.web.errors import field_messages

router = APIRouter(include_in_schema=False)

_REGISTERED_COOKIE = "registered"


def _csrf(context: ContextDep) -> Csrf:
    settings = context.settings
    return Csrf(settings.secret_key.get_secret_value(), secure_cookies=settings.cookies_secure)


def _form_page(
    request: Request,
    context: ContextDep,
    *,
    status_code: int = status.HTTP_200_OK,
    values: dict[str, str] | None = None,
    errors: dict[str, str] | None = None,
    form_error: str | None = None,
) -> Response:
    csrf = _csrf(context)
    token, new_cookie = csrf.issue(request)
    response = templates.TemplateResponse(
        request,
        "register.html",
        {
            "values": values or {},
            "errors": errors or {},
            "form_error": form_error,
            "csrf_token": token,
        },
        status_code=status_code,
    )
    if new_cookie:
        csrf.set_cookie(response, new_cookie)
    return response


@router.get("/")
async def home() -> RedirectResponse:
    return RedirectResponse("/register", status_code=status.HTTP_303_SEE_OTHER)


@router.get("/register", response_class=HTMLResponse)
async def register_form(request: Request, context: ContextDep) -> Response:
    return _form_page(request, context)


@router.post("/register", response_class=HTMLResponse)
async def register_submit(
    request: Request,
    context: ContextDep,
    session: SessionDep,
    background: BackgroundTasks,
    limiter: LimiterDep,
    username: Annotated[str, Form()] = "",
    email: Annotated[str, Form()] = "",
    password: Annotated[str, Form()] = "",
    csrf_token: Annotated[str, Form()] = "",
) -> Response:
    # The password is never echoed back into the form.
    values = {"username": username, "email": email}
    if not _csrf(context).is_valid(request, csrf_token):
        return _form_page(
            request,
            context,
            status_code=status.HTTP_403_FORBIDDEN,
            values=values,
            form_error="This form expired or did not come from this site. Please submit it again.",
        )
    if (retry_after := limiter.retry_after(request)) is not None:
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
        )
    except RegistrationRefused as exc:
        code = 409 if isinstance(exc, DuplicateUserError) else 422
        return _form_page(request, context, status_code=code, values=values, errors=exc.fields)
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


@router.get("/register/done", response_class=HTMLResponse)
async def register_done(request: Request, context: ContextDep) -> Response:
    who: dict[str, Any] | None = None
    try:
        who = _registered_signer(context).loads(
            request.cookies.get(_REGISTERED_COOKIE, ""), max_age=600
        )
    except BadSignature:
        who = None
    return templates.TemplateResponse(request, "registered.html", {"who": who})


@router.get("/verify", response_class=HTMLResponse)
async def verify(
    request: Request,
    context: ContextDep,
    session: SessionDep,
    background: BackgroundTasks,
    token: Annotated[str, Query()] = "",
) -> Response:
    result = await verify_email(
        session,
        token=token,
        tokens=context.tokens,
    )
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
        {"status": result.status.value, "username": result.username},
        status_code=status_code,
    )


def _registered_signer(context: ContextDep) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(context.settings.secret_key.get_secret_value(), salt="registered")
