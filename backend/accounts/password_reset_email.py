"""The password reset email: a job kind sent by a `UserEmailHandler` with the
`password_reset` template, whose link is made when the email is sent.

Why at send time, and not when the reset is asked for: the job's payload then holds no
secret (only the user's id and the Message-ID), so the jobs table, its backups and the
operator page never hold a working reset token; `password_reset_tokens` holds only the
token's SHA-256, written in the transaction just before the email goes. And an email
that a relay outage held back still carries a link with its whole lifetime ahead, as the
verification link does. A retry after a failed attempt makes a new token (the one made
for the failed attempt reached nobody, and expires unused); a crash between the relay's
250 and its record sends a second email whose link works too, each once.
"""

import secrets
from collections.abc import Sequence
from datetime import timedelta

from sqlalchemy import Interval, func, insert, literal
from sqlalchemy.ext.asyncio import AsyncSession

from backend.accounts.signin import token_digest
from backend.accounts.tokens import human_duration
from backend.jobs.outbox import ClaimedJob
from backend.models import PasswordResetToken, User

KIND = "email.password_reset"
TEMPLATE = "password_reset"


class ResetLinks:
    """The `reset_url` and `reset_lifetime` of each reset email, a token row each."""

    def __init__(self, *, ttl_seconds: int, app_base_url: str) -> None:
        self._ttl = timedelta(seconds=ttl_seconds)
        self._base_url = app_base_url.rstrip("/")
        # What the email says: "valid for 1 hour".
        self.lifetime = human_duration(ttl_seconds)

    async def for_jobs(
        self, session: AsyncSession, recipients: Sequence[tuple[ClaimedJob, User]]
    ) -> dict[int, dict[str, str]]:
        tokens = {job.id: secrets.token_urlsafe(32) for job, _ in recipients}
        expires_at = func.now() + literal(self._ttl, Interval)
        await session.execute(
            insert(PasswordResetToken).values(
                [
                    {
                        "user_id": user.id,
                        "token_hash": token_digest(tokens[job.id]),
                        "expires_at": expires_at,
                    }
                    for job, user in recipients
                ]
            )
        )
        return {
            job_id: {
                "reset_url": f"{self._base_url}/password/reset?token={token}",
                "reset_lifetime": self.lifetime,
            }
            for job_id, token in tokens.items()
        }
