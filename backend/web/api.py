"""The JSON face: the same registration and verification resend as the form, for programs."""

from fastapi import APIRouter, BackgroundTasks, Request, status
from fastapi.responses import JSONResponse

from backend.accounts.resend import request_verification_email
from backend.accounts.schemas import RegistrationIn, ResendAccepted, ResendIn, UserOut
from backend.accounts.service import DuplicateUserError, RegistrationRefused, register
from backend.observability import metrics
from backend.web.deps import ContextDep, RegisterLimitDep, ResendLimitDep, SessionDep
from backend.web.responses import API_ERRORS, FieldError, FieldErrors

# Every route here documents 422, 429 and 503 (with Retry-After) through API_ERRORS.
router = APIRouter(prefix="/api", responses=API_ERRORS)

# A taken email leads to the resend: its owner may only have lost the link.
RESEND_HINT = (
    "; if it is yours and not confirmed yet, POST /api/verification/resend sends a new link"
)
RESEND_ACCEPTED = (
    "If an account with this address is waiting for confirmation, a new confirmation "
    "link is on its way to it."
)


@router.post(
    "/register",
    tags=["registration"],
    status_code=status.HTTP_201_CREATED,
    response_model=UserOut,
    responses={
        status.HTTP_409_CONFLICT: {
            "model": FieldErrors,
            "description": (
                "The username or the email is taken (in any letter case). With "
                "REGISTRATION_ENUMERATION_SAFE, a taken email is answered 201 instead, "
                "and only a taken username is a 409."
            ),
        },
    },
    summary="Register a user",
    description=(
        "Creates the user and queues the welcome email and the audit entry, which are sent "
        "and written right after the response. Username and email are unique regardless of case."
    ),
)
async def register_user(
    data: RegistrationIn,
    context: ContextDep,
    session: SessionDep,
    background: BackgroundTasks,
    register_limit: RegisterLimitDep,
    request: Request,
) -> UserOut | JSONResponse:
    if (retry_after := await register_limit.retry_after(request)) is not None:
        metrics.registration("api", "rate_limited")
        return JSONResponse(
            {"detail": "Too many registration attempts. Please wait and try again."},
            status_code=status.HTTP_429_TOO_MANY_REQUESTS,
            headers={"Retry-After": str(retry_after)},
        )
    settings = context.settings
    try:
        registered = await register(
            session,
            data=data,
            channel="api",
            sender_address=settings.mail_from,
            smtputf8=settings.mail_smtputf8,
            hasher=context.hasher,
            mail_limit=context.mail_limit,
            enumeration_safe=settings.registration_enumeration_safe,
            replace_unverified_after=settings.unverified_replaceable_after,
        )
    except RegistrationRefused as exc:
        duplicate = isinstance(exc, DuplicateUserError)
        refusal = FieldErrors(
            detail=[
                FieldError(
                    loc=["body", field],
                    msg=message + (RESEND_HINT if duplicate and field == "email" else ""),
                    type="conflict" if duplicate else "undeliverable",
                )
                for field, message in exc.fields.items()
            ]
        )
        code = status.HTTP_409_CONFLICT if duplicate else status.HTTP_422_UNPROCESSABLE_CONTENT
        return JSONResponse(refusal.model_dump(exclude_none=True), status_code=code)
    background.add_task(context.runner.run_now, registered.job_ids)
    return registered.user


@router.post(
    "/verification/resend",
    tags=["registration"],
    status_code=status.HTTP_202_ACCEPTED,
    response_model=ResendAccepted,
    summary="Send a new verification email",
    description=(
        "Queues a new verification email if the address belongs to an account that is not "
        "confirmed yet. The answer is the same 202 for every well-formed address, whether "
        "or not such an account exists (and whether or not the address's mail budget, "
        "MAIL_PER_ADDRESS_LIMIT, let an email go); 429 is per client, whatever the address."
    ),
)
async def resend_verification(
    data: ResendIn,
    context: ContextDep,
    session: SessionDep,
    background: BackgroundTasks,
    resend_limit: ResendLimitDep,
    request: Request,
) -> ResendAccepted | JSONResponse:
    if (retry_after := await resend_limit.retry_after(request)) is not None:
        return JSONResponse(
            {"detail": "Too many requests. Please wait and try again."},
            status_code=status.HTTP_429_TOO_MANY_REQUESTS,
            headers={"Retry-After": str(retry_after)},
        )
    requested = await request_verification_email(
        session,
        email=str(data.email),
        channel="api",
        sender_address=context.settings.mail_from,
        mail_limit=context.mail_limit,
    )
    background.add_task(context.runner.run_now, list(requested.job_ids))
    return ResendAccepted(detail=RESEND_ACCEPTED)
