"""What became of the emails queued for a person, read from the outbox as it stands.

Nothing is recorded for these pages: a job's row already says all of it (its status,
attempts, times and the relay's last answer), so the sending path does no extra work.
The jobs of one user are found through their own partial index on `payload->>'user_id'`
(`ix_jobs_email_by_user`), newest first, a bounded number of them.

The words people read are here too, one sentence per state, so that the account page,
the page after registering and the API's users all see the same story.
"""

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from sqlalchemy import Row, Select, Text, cast, literal_column, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from backend.mail.faults import mask_addresses
from backend.mail.suppressions import SUPPRESSED_PREFIX
from backend.models import Job, User

Status = Literal["queued", "sending", "sent", "retrying", "failed", "suppressed", "cancelled"]
# Nothing more will happen to such an email by itself: the pages stop updating.
FINAL: frozenset[Status] = frozenset({"sent", "failed", "suppressed", "cancelled"})

# The jobs that are emails to a person (their payload names the user), spelled as the
# index `ix_jobs_email_by_user` spells them: constants, not parameters, so that the planner
# matches the partial index whatever plan a prepared statement gets.
_EMAIL_JOB = text("jobs.kind LIKE 'email.%'")
_USER_OF_JOB = literal_column("jobs.payload ->> 'user_id'", Text)
DEFAULT_LIMIT = 50

# The kinds people are shown; a kind not named here reads as its own name in words.
KIND_WORDS = {
    "email.welcome": "Welcome email",
    "email.verification": "New confirmation link",
    "email.registration_attempt": "Someone tried to register with your address",
    "email.password_reset": "Password reset link",
    "email.password_changed": "Your password was changed",
}


@dataclass(frozen=True, kw_only=True)
class MailState:
    job_id: int
    kind: str
    # Where it goes: the job's own `to` (an email to another address than the account's,
    # such as a new address to confirm), else the user's address now.
    to: str
    status: Status
    attempts: int
    queued_at: datetime
    sent_at: datetime | None
    # The relay's last answer, with no address's local part in it.
    last_error: str | None

    @property
    def final(self) -> bool:
        return self.status in FINAL

    @property
    def kind_words(self) -> str:
        return (
            KIND_WORDS.get(self.kind)
            or self.kind.removeprefix("email.").replace("_", " ").capitalize()
        )

    @property
    def words(self) -> "StateWords":
        return state_words(self.status, sent_at=self.sent_at)


def status_of(status: str, *, attempts: int, last_error: str | None) -> Status:
    """A job's state as a person reads it. A pending job that has been tried (or held
    back, its attempt given back, while the relay was away: it then has a last error)
    is being retried; one never tried is queued."""
    if status == "running":
        return "sending"
    if status == "pending":
        return "queued" if attempts == 0 and not last_error else "retrying"
    if status == "succeeded":
        return "sent"
    if status == "failed":
        return "suppressed" if (last_error or "").startswith(SUPPRESSED_PREFIX) else "failed"
    return "cancelled"


@dataclass(frozen=True)
class StateWords:
    headline: str
    detail: str


def when(moment: datetime | None) -> str:
    return f"{moment:%Y-%m-%d %H:%M:%S} UTC" if moment else ""


def state_words(status: Status, *, sent_at: datetime | None = None) -> StateWords:
    """The sentence a person reads for each state (docs/mail-status.md lists them)."""
    if status == "queued":
        return StateWords("Waiting to be sent", "It is in the queue and goes out in a moment.")
    if status == "sending":
        return StateWords("Being sent now", "We are handing it to the mail server.")
    if status == "retrying":
        return StateWords(
            "Not sent yet, retrying",
            "The mail server is unavailable or asked us to wait; we keep trying.",
        )
    if status == "sent":
        at = f" at {when(sent_at)}" if sent_at else ""
        return StateWords(
            "Sent",
            f"The mail server accepted it{at}. If it isn't in your inbox, check your spam folder.",
        )
    if status == "failed":
        return StateWords(
            "Not sent: refused",
            "The mail server refused it: the address may not exist. Check the address, "
            "change it, or ask for a new link.",
        )
    if status == "suppressed":
        return StateWords(
            "Not sent: address blocked",
            "This address refused an earlier email for good, so we no longer send to it. "
            "Check the address, or change it; a new link would be refused too.",
        )
    return StateWords("Not sent: cancelled", "It was cancelled before it could go.")


_COLUMNS = (
    Job.id,
    Job.kind,
    Job.status,
    Job.attempts,
    Job.created_at,
    Job.finished_at,
    Job.last_error,
    Job.payload["to"].astext.label("to"),
)


def _state(row: Row[Any], *, address: str | None) -> MailState:
    error = mask_addresses(row.last_error) if row.last_error else None
    shown = status_of(row.status, attempts=row.attempts, last_error=error)
    return MailState(
        job_id=row.id,
        kind=row.kind,
        to=row.to or address or "",
        status=shown,
        attempts=row.attempts,
        queued_at=row.created_at,
        sent_at=row.finished_at if shown == "sent" else None,
        last_error=error,
    )


def emails_query(user_id: str, *, limit: int = DEFAULT_LIMIT) -> Select[Any]:
    """The query of one user's emails (`user_id` as the payload spells it), newest first."""
    return (
        select(*_COLUMNS)
        .where(_EMAIL_JOB, _USER_OF_JOB.op("=")(user_id))
        .order_by(Job.id.desc())
        .limit(limit)
    )


async def emails_of(
    session: AsyncSession, *, user: User, limit: int = DEFAULT_LIMIT
) -> list[MailState]:
    """The emails queued for `user`, newest first, at most `limit` of them (the
    retention settings purge the old ones anyway)."""
    rows = await session.execute(emails_query(str(user.id), limit=limit))
    return [_state(row, address=user.email) for row in rows]


async def email_by_id(session: AsyncSession, *, job_id: int) -> MailState | None:
    """One email job, whoever it is for: the caller must hold a proof that it may see it
    (the page after registering holds a signed cookie naming it)."""
    row = (
        await session.execute(
            select(*_COLUMNS, User.email.label("address"))
            .outerjoin(User, cast(User.id, Text) == _USER_OF_JOB)
            .where(Job.id == job_id, _EMAIL_JOB)
        )
    ).first()
    return None if row is None else _state(row, address=row.address)
