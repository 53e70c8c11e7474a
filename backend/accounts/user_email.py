"""Emails to a user's address, queued with the change they follow and sent by background
work: the welcome email, the verification resend and the "someone tried to register with
your address" notice are each a job kind with a template, sent by one handler class.

The Message-ID is chosen when the email is queued and kept in the job, so every attempt to
deliver that email carries the same one: a duplicate caused by a crash between "SMTP
accepted" and "recorded as sent" is recognisable as such. The verification link is made
when the email is sent, so an email held back by a relay outage still carries a fresh link.
"""

import contextlib
import functools
import logging
import time
import uuid
from collections.abc import AsyncGenerator, Sequence
from email.utils import make_msgid
from typing import Any, Protocol

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from backend.accounts import suppressions
from backend.accounts.suppressions import SuppressionAdded
from backend.accounts.tokens import VerificationTokens
from backend.audit.service import AuditEntry, JobAuditRow, record
from backend.jobs.handlers import Done, Failed, Held, Outcome
from backend.jobs.outbox import ClaimedJob, enqueue
from backend.mail.faults import Fault
from backend.mail.render import EmailRenderer
from backend.mail.sender import MailSender, NotDelivered, OutgoingEmail
from backend.mail.suppressions import (
    SUPPRESSED_PREFIX,
    Suppression,
    SuppressionRow,
    suppressed_among,
    suppression_key,
)
from backend.models import Job, User
from backend.observability import metrics
from backend.observability.request_context import scope

log = logging.getLogger(__name__)


def user_email_payload(*, kind: str, sender_address: str) -> dict[str, Any]:
    """The payload of an email job of `kind`, but for its `user_id` (the caller adds it:
    in Python, or in SQL where the user is found by the same statement)."""
    domain = sender_address.rpartition("@")[2] or "localhost"
    return {"message_id": make_msgid(kind.rpartition(".")[2], domain=domain)}


def enqueue_user_email(
    session: AsyncSession,
    *,
    kind: str,
    user_id: uuid.UUID,
    sender_address: str,
    extra: dict[str, Any] | None = None,
) -> Job:
    """`extra`: more payload keys, e.g. `to` (another address than the account's)."""
    payload = user_email_payload(kind=kind, sender_address=sender_address)
    return enqueue(
        session, kind=kind, payload={"user_id": str(user_id), **payload, **(extra or {})}
    )


class SendTimeValues(Protocol):
    """What a kind's template needs beyond the common values, made when its emails are
    sent, in one transaction per batch, committed before they go (the password reset's
    link, whose token row is written then: see `password_reset_email.py`)."""

    async def for_jobs(
        self, session: AsyncSession, recipients: Sequence[tuple[ClaimedJob, User]]
    ) -> dict[int, dict[str, str]]:
        """Template values per job id."""
        ...


class UserEmailHandler:
    """Sends the emails of one kind from `templates/email/<template>.*`.

    Every template gets `username`, `verified`, `verify_url` (a fresh link), `resend_url`,
    `link_lifetime` and `base_url`, and whatever `send_time_values` makes for its job.
    With `skip_verified`, a user verified since the email was queued is not sent it (a
    resent link they no longer need): the job is done, with an `email.skipped` audit row.

    An address the relay refused for good at `RCPT TO` goes on the suppression list (with a
    `suppression.added` row); a later email to it is not attempted: its job fails at once,
    its `last_error` starting with `suppressed: `, with an `email.suppressed` audit row.
    """

    def __init__(
        self,
        *,
        template: str,
        skip_verified: bool = False,
        sessionmaker: async_sessionmaker[AsyncSession],
        sender: MailSender,
        renderer: EmailRenderer,
        tokens: VerificationTokens,
        app_base_url: str,
        batch_size: int,
        send_time_values: SendTimeValues | None = None,
    ) -> None:
        self._template = template
        self._send_time_values = send_time_values
        self._skip_verified = skip_verified
        self._sessionmaker = sessionmaker
        self._sender = sender
        self._renderer = renderer
        self._tokens = tokens
        self._base_url = app_base_url.rstrip("/")
        self._batch_size = batch_size

    def ready(self) -> bool:
        return self._sender.relay.ready()

    async def run(
        self, jobs: Sequence[ClaimedJob]
    ) -> AsyncGenerator[tuple[ClaimedJob, Outcome], None]:
        users = await self._load_users(jobs)
        recipients: list[tuple[ClaimedJob, User]] = []
        for job in jobs:
            if _user_id(job) is None or not isinstance(job.payload.get("message_id"), str):
                # The keys, not the values: last_error is shown on the operator page.
                error = f"malformed payload (keys: {', '.join(sorted(job.payload))})"
                yield job, Failed(error=error, permanent=True)
                continue
            user = users.get(str(job.payload["user_id"]))
            if user is None:
                # Deleted meanwhile (e.g. an expired unverified account replaced by a new
                # registration): that job alone fails, for good.
                yield job, Failed(error="the user no longer exists", permanent=True)
                continue
            if self._skip_verified and user.email_verified_at is not None:
                details = {"message_id": job.payload["message_id"], "reason": "already verified"}
                entry = AuditEntry(action="email.skipped", user_id=user.id, details=details)
                yield job, Done(rows=JobAuditRow(entry, job.id))
                continue
            recipients.append((job, user))
        try:
            extra = await self._values_at_send_time(recipients)
        except Exception as exc:
            log.warning("making the %s emails' links failed: %r", self._template, exc)
            for job, _ in recipients:
                yield job, Failed(error=f"making its link failed: {exc!r}")
            return
        ready: dict[str, tuple[ClaimedJob, User, OutgoingEmail]] = {}
        for job, user in recipients:
            try:
                email = self._compose(job, user, extra.get(job.id, {}))
            except Exception as exc:
                with scope(job.log_context()):
                    log.exception("composing the %s email of job %s failed", self._template, job.id)
                yield job, Failed(error=f"composing failed: {exc!r}")
                continue
            ready[email.message_id] = (job, user, email)
        # Checked against the composed address, the one the relay would be asked for. (A
        # kind with send-time values has made them already: a reset link nobody gets.)
        try:
            suppressed = await self._suppressed([email for _, _, email in ready.values()])
        except Exception as exc:
            log.warning("reading the suppression list failed: %r", exc)
            for job, _, _ in ready.values():
                yield job, Failed(error=f"reading the suppression list failed: {exc!r}")
            return
        for message_id, suppression in suppressed.items():
            job, _, _ = ready.pop(message_id)
            counted = functools.partial(metrics.email_suppressed, job.kind)
            # Nothing was tried: the attempt is not counted.
            outcome = Failed(suppression.error(), permanent=True, recorded=counted, attempted=False)
            yield job, outcome
        # One SMTP connection per chunk: a backlog drains without a handshake per message.
        queue = list(ready.values())
        for start in range(0, len(queue), self._batch_size):
            chunk = [email for _, _, email in queue[start : start + self._batch_size]]
            # Closed at once when the runner stops asking (a lost lease): no more sending.
            async with contextlib.aclosing(self._sender.deliver(chunk)) as deliveries:
                async for email, problem in deliveries:
                    job, user, _ = ready[email.message_id]
                    if problem is None:  # the relay's 250, this moment
                        metrics.email_delivered(job.kind, time.monotonic() - job.queued_at)
                    yield job, _outcome(job, user, email, problem)

    async def on_give_up(self, session: AsyncSession, job: ClaimedJob, error: str) -> None:
        details: dict[str, Any] = {
            "message_id": job.payload.get("message_id"),
            "kind": job.kind,
            "error": error,
        }
        if error.startswith(SUPPRESSED_PREFIX):
            # Never attempted: the address is on the suppression list.
            entry = AuditEntry(action="email.suppressed", user_id=_user_id(job), details=details)
        else:
            details["attempts"] = job.attempts
            entry = AuditEntry(action="email.failed", user_id=_user_id(job), details=details)
        await record(session, entry=entry, job_id=job.id)

    async def _load_users(self, jobs: Sequence[ClaimedJob]) -> dict[str, User]:
        ids = [user_id for job in jobs if (user_id := _user_id(job))]
        async with self._sessionmaker() as session:
            rows = await session.scalars(select(User).where(User.id.in_(ids)))
            return {str(user.id): user for user in rows}

    async def _suppressed(self, emails: Sequence[OutgoingEmail]) -> dict[str, Suppression]:
        """The suppression entries of these emails' recipients, by Message-ID."""
        if not emails:
            return {}
        async with self._sessionmaker() as session:
            entries = await suppressed_among(session, (email.to for email in emails))
        return {
            email.message_id: entry
            for email in emails
            if (entry := entries.get(suppression_key(email.to))) is not None
        }

    async def _values_at_send_time(
        self, recipients: Sequence[tuple[ClaimedJob, User]]
    ) -> dict[int, dict[str, str]]:
        if self._send_time_values is None or not recipients:
            return {}
        async with self._sessionmaker() as session:
            values = await self._send_time_values.for_jobs(session, recipients)
            await session.commit()
        return values

    def _compose(self, job: ClaimedJob, user: User, extra: dict[str, str]) -> OutgoingEmail:
        token = self._tokens.issue(user_id=user.id, email=user.email)
        content = self._renderer.render(
            self._template,
            username=user.username,
            verified=user.email_verified_at is not None,
            verify_url=f"{self._base_url}/verify?token={token}",
            resend_url=f"{self._base_url}/verify/resend",
            link_lifetime=self._tokens.lifetime,
            base_url=self._base_url,
            **extra,
        )
        # An address change's emails go to the address concerned, not the account's one.
        to = job.payload.get("to") or user.email
        if not isinstance(to, str):
            raise TypeError("the payload's 'to' is not an address")
        return OutgoingEmail(
            to=to,
            to_name=user.username,
            message_id=str(job.payload["message_id"]),
            content=content,
            log_context=job.log_context(),
            trace=job.trace(),
        )


def _user_id(job: ClaimedJob) -> uuid.UUID | None:
    """The job's user, or None when the payload is malformed (that job then fails alone)."""
    try:
        return uuid.UUID(str(job.payload["user_id"]))
    except (KeyError, ValueError):
        return None


def _outcome(
    job: ClaimedJob, user: User, email: OutgoingEmail, problem: NotDelivered | None
) -> Outcome:
    if problem is None:
        details = {
            "message_id": email.message_id,
            "kind": job.kind,
            "to": email.to,
            "attempt": job.attempts,
        }
        entry = AuditEntry(action="email.sent", user_id=user.id, details=details)
        return Done(rows=JobAuditRow(entry, job.id))
    if problem.fault.is_relays:
        return Held(reason=problem.error)
    if problem.fault is Fault.RECIPIENT_REFUSED:
        # No such mailbox: no later email to it is attempted (mail/suppressions.py).
        added = SuppressionAdded(
            SuppressionRow(address=email.to, reason=problem.error, job_id=job.id),
            JobAuditRow(
                AuditEntry(
                    action=suppressions.ADDED,
                    user_id=user.id,
                    details={
                        "address": suppression_key(email.to),
                        "reason": problem.error,
                        "kind": job.kind,
                        "message_id": email.message_id,
                    },
                ),
                job.id,
            ),
        )
        return Failed(error=problem.error, permanent=True, rows=added)
    return Failed(error=problem.error, permanent=problem.fault.is_permanent)
