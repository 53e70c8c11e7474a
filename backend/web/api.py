"""The JSON face: the same registration as the form, for programs."""

from fastapi import APIRouter, BackgroundTasks, Request, status
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from backend.accounts.schemas import RegistrationIn, UserOut
from backend.accounts.service import DuplicateUserError, RegistrationRefused, register
from backend.web.deps import ContextDep, LimiterDep, SessionDep

router = APIRouter(prefix="/api", tags=["registration"])


class FieldError(BaseModel):
    loc: list[str]
    msg: str
    type: str


class ConflictOut(BaseModel):
    detail: list[FieldError]


@router.post(
    "/register",
    status_code=status.HTTP_201_CREATED,
    response_model=UserOut,
    responses={
        status.HTTP_409_CONFLICT: {"model": ConflictOut, "description": "Taken"},
        status.HTTP_429_TOO_MANY_REQUESTS: {"description": "Too many attempts from this client"},
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
    limiter: LimiterDep,
    request: Request,
) -> UserOut | JSONResponse:
    if (retry_after := limiter.retry_after(request)) is not None:
        return JSONResponse(
            {"detail": "Too many registration attempts. Please wait and try again."},
            status_code=status.HTTP_429_TOO_MANY_REQUESTS,
            headers={"Retry-After": str(retry_after)},
        )
    try:
        registered = await register(
            session,
            data=data,
            channel="api",
            sender_address=context.settings.mail_from,
            smtputf8=context.settings.mail_smtputf8,
            hasher=context.hasher,
        )
    except RegistrationRefused as exc:
        duplicate = isinstance(exc, DuplicateUserError)
        refusal = ConflictOut(
            detail=[
                FieldError(
                    loc=["body", field],
                    msg=message,
                    type="conflict" if duplicate else "undeliverable",
                )
                for field, message in exc.fields.items()
            ]
        )
        code = status.HTTP_409_CONFLICT if duplicate else status.HTTP_422_UNPROCESSABLE_CONTENT
        return JSONResponse(refusal.model_dump(), status_code=code)
    background.add_task(context.runner.run_now, registered.job_ids)
    return UserOut.model_validate(registered.user)
