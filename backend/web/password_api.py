"""The JSON face of the password reset: asking for a link, and using it."""

from fastapi import APIRouter, Request, Response, status
from fastapi.responses import JSONResponse

from backend.accounts.password_reset import ResetLink
from backend.accounts.schemas import PasswordForgotAccepted, PasswordForgotIn, PasswordResetIn
from backend.web.deps import (
    AfterResponseDep,
    PasswordResetDep,
    PasswordResetLimitDep,
    SessionDep,
)
from backend.web.responses import API_ERRORS, Problem

router = APIRouter(prefix="/api/password", responses=API_ERRORS, tags=["password reset"])

FORGOT_ACCEPTED = (
    "If an account has this address, a link to choose a new password is on its way to it."
)
BAD_LINK = "This reset link is invalid, has expired or was already used; ask for a new one"


@router.post(
    "/forgot",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=PasswordForgotAccepted,
    summary="Email a password reset link",
    description=(
        "Queues a reset email if an account has the address. The same 202 for every "
        "well-formed address, whether or not an account has it, and whether or not its "
        "per-address limits (PASSWORD_RESET_RATE_LIMIT, MAIL_PER_ADDRESS_LIMIT) let an "
        "email go; 429 is per client (PASSWORD_RESET_RATE_LIMIT), whatever the address."
    ),
)
async def forgot_password(
    data: PasswordForgotIn,
    request: Request,
    session: SessionDep,
    reset_limit: PasswordResetLimitDep,
    password_reset: PasswordResetDep,
    after_response: AfterResponseDep,
) -> PasswordForgotAccepted:
    await reset_limit.check(request, channel="api")
    job_ids = await password_reset.request(session, email=str(data.email), channel="api")
    # Whether or not anything was queued (run_now ignores none): the same path either way.
    after_response.run_jobs(job_ids)
    return PasswordForgotAccepted(detail=FORGOT_ACCEPTED)


@router.post(
    "/reset",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    responses={
        status.HTTP_400_BAD_REQUEST: {
            "model": Problem,
            "description": "The link is forged, expired, used, or older than the last change.",
        },
    },
    summary="Choose a new password with a reset link's token",
    description=(
        "`token` is the `token` of the link in the reset email. The password follows the "
        "registration's rules (422 otherwise). On success every session and bearer token "
        "of the account is revoked, the address counts as confirmed, and a 'your password "
        "was changed' email is queued."
    ),
)
async def reset_password(
    data: PasswordResetIn,
    session: SessionDep,
    password_reset: PasswordResetDep,
    after_response: AfterResponseDep,
) -> Response:
    result = await password_reset.reset(
        session, token=data.token, password=data.password, channel="api"
    )
    if result.status is not ResetLink.DONE:
        return JSONResponse({"detail": BAD_LINK}, status_code=status.HTTP_400_BAD_REQUEST)
    after_response.run_jobs(result.job_ids)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
