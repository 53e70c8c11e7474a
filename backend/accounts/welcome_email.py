"""The welcome email: queued with the registration, sent by background work (one
`UserEmailHandler` with the `welcome` template, registered in backend/context.py)."""

from sqlalchemy.ext.asyncio import AsyncSession

from backend.accounts.user_email import enqueue_user_email
from backend.models import Job, User

KIND = "email.welcome"
TEMPLATE = "welcome"


def enqueue_welcome_email(session: AsyncSession, *, user: User, sender_address: str) -> Job:
    return enqueue_user_email(session, kind=KIND, user_id=user.id, sender_address=sender_address)
