"""The JSON face of changing the address: POST /api/me/email with the bearer token.

The links the emails carry open pages (web/email_change_pages.py): a person confirms or
undoes a change in a browser, whatever asked for it.
"""

from typing import Annotated

from fastapi import APIRouter, Depends, Request, status
from fastapi.responses import JSONResponse

from backend.accounts.email_change import ChangeRefused
from backend.accounts.features import TooManySignIns
from backend.accounts.schemas import EmailChangeAccepted, EmailChangeIn
from backend.models import User
from backend.web.deps import (
    TOO_MANY_SIGNINS,
    AddressChangeDep,
    AfterResponseDep,
    SessionDep,
    SigninLimitDep,
)
from backend.web.ratelimit import RateLimited
from backend.web.responses import API_ERRORS, FieldError, FieldErrors, Problem
from backend.web.signin_api import CHALLENGE, UNAUTHORIZED, bearer_user

router = APIRouter(prefix="/api/me", responses=API_ERRORS, tags=["sign-in"])

ACCEPTED = (
    "Check the new address: a link to confirm it is on its way. Until it is used, the "
    "account keeps its current address, which is told of the change."
)
WRONG_PASSWORD = "Incorrect password"


@router.post(
    "/email",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=EmailChangeAccepted,
    responses={
        status.HTTP_401_UNAUTHORIZED: {
            **UNAUTHORIZED,
            "description": (
                "No bearer token, or an unknown, expired or revoked one; or a wrong `password`."
            ),
        },
    },
    summary="Change the address (confirmed by the new one)",
    description=(
        "`password` is the account's current password. The new address gets a link "
        "(`/email/confirm?token=...`) and the current one a notice with a link that undoes "
        "the change for EMAIL_CHANGE_REVERT_DAYS (`/email/revert?token=...`); nothing "
        "changes until the new address confirms. An address another account has gets the "
        "same 202, and its owner a notice instead of a link. 422 for a malformed address, "
        "the current one, or one mail cannot reach; 429 past SIGNIN_RATE_LIMIT (per client "
        "and per account: the password is checked as a sign-in checks it)."
    ),
)
async def change_email(
    data: EmailChangeIn,
    request: Request,
    user: Annotated[User, Depends(bearer_user)],
    session: SessionDep,
    signin_limit: SigninLimitDep,
    address_change: AddressChangeDep,
    after_response: AfterResponseDep,
) -> EmailChangeAccepted | JSONResponse:
    await signin_limit.check(request, channel="api")
    try:
        result = await address_change.request(
            session, user=user, email=str(data.email), password=data.password, channel="api"
        )
    except TooManySignIns as exc:
        raise RateLimited(exc.retry_after, detail=TOO_MANY_SIGNINS) from exc
    except ChangeRefused as exc:
        refusal = FieldErrors(
            detail=[
                FieldError(loc=["body", field], msg=message, type="value_error")
                for field, message in exc.fields.items()
            ]
        )
        return JSONResponse(
            refusal.model_dump(exclude_none=True),
            status_code=status.HTTP_422_UNPROCESSABLE_CONTENT,
        )
    if not result.accepted:
        return JSONResponse(
            Problem(detail=WRONG_PASSWORD).model_dump(),
            status_code=status.HTTP_401_UNAUTHORIZED,
            headers=CHALLENGE,
        )
    after_response.run_jobs(result.job_ids)
    return EmailChangeAccepted(detail=ACCEPTED)
