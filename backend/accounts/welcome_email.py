"""The welcome email: queued with the registration, sent by background work.

The Message-ID is chosen when the email is queued and kept in the job, so every
attempt to deliver this email carries the same one: a duplicate caused by a crash
between "SMTP accepted" and "recorded as sent" is recognisable as such.
"""

import logging
import uuid
from collections.abc import Sequence
from email.utils import make_msgid

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from backend.accounts.tokens import VerificationTokens
from backend.audit.service import AuditEntry
from backend.jobs.handlers import Done, Failed, Outcome
from backend.jobs.outbox import ClaimedJob, enqueue
from backend.mail.render import EmailRenderer
from backend.mail.sender import MailSender, OutgoingEmail, PermanentDeliveryError
from backend.models import Job, User

KIND = "email.welcome"

log = logging.getLogger(__name__)


def enqueue_welcome_email(
    session: AsyncSession, *, user: User, sender_address: str, max_attempts: int
) -> Job:
    domain = sender_address.rpartition("@")[2] or "localhost"
    payload = {"user_id": str(user.id), "message_id": make_msgid("welcome", domain=domain)}
    return enqueue(session, kind=KIND, payload=payload, max_attempts=max_attempts)


class WelcomeEmailHandler:
    def __init__(
        self,
        *,
        sessionmaker: async_sessionmaker[AsyncSession],
        sender: MailSender,
        renderer: EmailRenderer,
        tokens: VerificationTokens,
        app_base_url: str,
        batch_size: int,
    ) -> None:
        self._sessionmaker = sessionmaker
        self._sender = sender
        self._renderer = renderer
        self._tokens = tokens
        self._base_url = app_base_url.rstrip("/")
        self._batch_size = batch_size

    async def __call__(self, jobs: Sequence[ClaimedJob]) -> Sequence[Outcome]:
        users = await self._load_users(jobs)
        outcomes: dict[int, Outcome] = {}
        ready: list[tuple[ClaimedJob, User, OutgoingEmail]] = []
        for job in jobs:
            user = users.get(job.payload["user_id"])
            if user is None:
                outcomes[job.id] = Failed(error="the user no longer exists", permanent=True)
                continue
            try:
                ready.append((job, user, self._compose(job, user)))
            except Exception as exc:
                log.exception("rendering the welcome email of job %s failed", job.id)
                outcomes[job.id] = Failed(error=f"rendering failed: {exc!r}")
        # One SMTP connection per chunk: a backlog drains without a handshake per message.
        for start in range(0, len(ready), self._batch_size):
            chunk = ready[start : start + self._batch_size]
            results = await self._sender.send_batch([email for _, _, email in chunk])
            for (job, user, email), error in zip(chunk, results, strict=True):
                outcomes[job.id] = _outcome(job, user, email, error)
        return [outcomes[job.id] for job in jobs]

    def on_give_up(self, job: ClaimedJob, error: str) -> Sequence[AuditEntry]:
        details = {
            "message_id": job.payload["message_id"],
            "error": error,
            "attempts": job.attempts,
        }
        user_id = uuid.UUID(job.payload["user_id"])
        return [AuditEntry(action="email.failed", user_id=user_id, details=details)]

    async def _load_users(self, jobs: Sequence[ClaimedJob]) -> dict[str, User]:
        ids = [uuid.UUID(job.payload["user_id"]) for job in jobs]
        async with self._sessionmaker() as session:
            rows = await session.scalars(select(User).where(User.id.in_(ids)))
            return {str(user.id): user for user in rows}

    def _compose(self, job: ClaimedJob, user: User) -> OutgoingEmail:
        token = self._tokens.issue(user_id=user.id, email=user.email)
        content = self._renderer.render(
            "welcome",
            username=user.username,
            verify_url=f"{self._base_url}/verify?token={token}",
            base_url=self._base_url,
        )
        return OutgoingEmail(
            to=user.email,
            to_name=user.username,
            message_id=job.payload["message_id"],
            content=content,
        )


def _outcome(
    job: ClaimedJob, user: User, email: OutgoingEmail, error: BaseException | None
) -> Outcome:
    if error is None:
        details = {"message_id": email.message_id, "to": email.to, "attempt": job.attempts}
        return Done(audit=[AuditEntry(action="email.sent", user_id=user.id, details=details)])
    permanent = isinstance(error, PermanentDeliveryError)
    return Failed(error=f"{type(error).__name__}: {error}", permanent=permanent)
