"""The JSON face: the same registration and verification resend as the form, for programs."""

from fastapi import APIRouter, Request, status
from fastapi.responses import JSONResponse

from backend.accounts.schemas import RegistrationIn, ResendAccepted, ResendIn, UserOut
from backend.accounts.service import DuplicateUserError, MailboxBudgetUsed, RegistrationRefused
from backend.web.deps import (
    AfterResponseDep,
    RegisterLimitDep,
    RegistrationDep,
    ResendLimitDep,
    SessionDep,
    VerificationResendDep,
)
from backend.web.ratelimit import RateLimited
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
    request: Request,
    session: SessionDep,
    register_limit: RegisterLimitDep,
    registration: RegistrationDep,
    after_response: AfterResponseDep,
) -> UserOut | JSONResponse:
    await register_limit.check(request, channel="api")
    try:
        registered = await registration.register(session, data=data, channel="api")
    except MailboxBudgetUsed as exc:
        raise RateLimited(exc.retry_after, detail=str(exc)) from exc
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
    after_response.run_jobs(registered.job_ids)
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
    request: Request,
    session: SessionDep,
    resend_limit: ResendLimitDep,
    verification_resend: VerificationResendDep,
    after_response: AfterResponseDep,
) -> ResendAccepted:
    await resend_limit.check(request, channel="api")
    requested = await verification_resend.request(session, email=str(data.email), channel="api")
    # Whether or not anything was queued (run_now ignores none): the same path either way.
    after_response.run_jobs(requested.job_ids)
    return ResendAccepted(detail=RESEND_ACCEPTED)
