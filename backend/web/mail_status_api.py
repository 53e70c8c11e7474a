"""GET /api/me/emails: what became of the emails queued for the signed-in user, read from
the outbox as it stands (`accounts/mail_status.py`), with the bearer token of /api/me."""

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, status
from pydantic import BaseModel, ConfigDict, Field

from backend.accounts.mail_status import MailState, Status
from backend.models import User
from backend.web.deps import MailStatusDep, SessionDep
from backend.web.responses import API_ERRORS
from backend.web.signin_api import UNAUTHORIZED, bearer_user

router = APIRouter(prefix="/api", responses=API_ERRORS, tags=["sign-in"])


class EmailOut(BaseModel):
    kind: str = Field(description="The job kind, e.g. `email.welcome`.")
    to: str = Field(description="The address it goes to.")
    status: Status = Field(
        description=(
            "`queued` (not tried yet), `sending`, `sent` (the relay accepted it), `retrying` "
            "(tried, or held back while the relay is unavailable; tried again later), "
            "`failed` (refused for good), `suppressed` (not sent: the address refused an "
            "earlier email for good), `cancelled` (by an operator)."
        )
    )
    attempts: int = Field(description="How many times it was handed to the relay.")
    queued_at: datetime
    sent_at: datetime | None = Field(description="When the relay accepted it.")
    last_error: str | None = Field(
        description="The relay's last answer, without any address's local part."
    )

    @classmethod
    def of(cls, state: MailState) -> "EmailOut":
        return cls(
            kind=state.kind,
            to=state.to,
            status=state.status,
            attempts=state.attempts,
            queued_at=state.queued_at,
            sent_at=state.sent_at,
            last_error=state.last_error,
        )


class EmailsOut(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "items": [
                        {
                            "kind": "email.welcome",
                            "to": "ada@example.com",
                            "status": "sent",
                            "attempts": 1,
                            "queued_at": "2027-02-02T20:31:04Z",
                            "sent_at": "2027-02-02T20:31:05Z",
                            "last_error": None,
                        }
                    ]
                }
            ]
        }
    )

    items: list[EmailOut] = Field(description="Newest first; the latest 50 at most.")


@router.get(
    "/me/emails",
    response_model=EmailsOut,
    responses={status.HTTP_401_UNAUTHORIZED: UNAUTHORIZED},
    summary="What became of my emails",
    description=(
        "The emails queued for the signed-in user (`Authorization: Bearer`), newest first, "
        "each with its state. Read from the queue as it stands: the same as `/account` shows."
    ),
)
async def my_emails(
    session: SessionDep,
    mail_status: MailStatusDep,
    user: Annotated[User, Depends(bearer_user)],
) -> EmailsOut:
    states = await mail_status.of_user(session, user=user)
    return EmailsOut(items=[EmailOut.of(state) for state in states])
