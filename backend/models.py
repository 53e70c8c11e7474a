"""The tables. Every schema change here needs an Alembic migration (`alembic check` guards it)."""

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    DateTime,
    ForeignKey,
    Identity,
    Index,
    Integer,
    String,
    Text,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB, UUID
from sqlalchemy.orm import Mapped, mapped_column

from backend.db import Base

# `cancelled`: stopped by an operator before it could run (or be retried); it never runs.
JOB_STATUSES = ("pending", "running", "succeeded", "failed", "cancelled")


class User(Base):
    __tablename__ = "users"
    # The INSERT returns the server's defaults (created_at): the API answers with the
    # committed user without a query of its own after the commit.
    __mapper_args__ = {"eager_defaults": True}  # noqa: RUF012 (SQLAlchemy reads it as is)

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True, default=uuid.uuid4)
    username: Mapped[str] = mapped_column(String(32))
    email: Mapped[str] = mapped_column(String(320))
    password_hash: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    email_verified_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # When the latest verification link was queued (at registration, then at each resend):
    # an unverified account is replaceable once that link is long expired (see
    # accounts/service.py, "No squatting").
    verification_sent_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )
    # When the password last changed (a reset): every reset link made before dies.
    password_changed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    # Case-insensitive uniqueness lives in the database so racing requests cannot both win.
    __table_args__ = (
        Index("uq_users_username_lower", func.lower(username), unique=True),
        Index("uq_users_email_lower", func.lower(email), unique=True),
    )


class UserSession(Base):
    """A signed-in browser (its cookie) or program (a bearer token from POST /api/token).

    Only the SHA-256 of the opaque token is stored: a copy of the table lets nobody in.
    Dead once revoked (sign-out, a password reset), past `expires_at`, or unused for the
    idle limit (`last_seen_at`, touched at most once a minute)."""

    __tablename__ = "sessions"

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    user_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("users.id", ondelete="CASCADE"), index=True
    )
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    kind: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    last_seen_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    # As the client sent it, cut to this length: only for people to recognise a session.
    user_agent: Mapped[str | None] = mapped_column(String(256))
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    __table_args__ = (CheckConstraint("kind IN ('browser', 'bearer')", name="kind_known"),)


class PasswordResetToken(Base):
    """A password reset link: only the SHA-256 of its opaque token is stored. It works
    once (`used_at`), until `expires_at`, and only if made after the password last
    changed (`users.password_changed_at`)."""

    __tablename__ = "password_reset_tokens"

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    user_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("users.id", ondelete="CASCADE"), index=True
    )
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class EmailChange(Base):
    """A request to move an account to another address. Nothing changes until the new
    address confirms (`confirmed_at`); the old address can undo it (`reverted_at`) for
    EMAIL_CHANGE_REVERT_DAYS. A newer request of the same account supersedes an
    unconfirmed one (`superseded_at`): only the latest can be confirmed."""

    __tablename__ = "email_changes"

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    user_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("users.id", ondelete="CASCADE"), index=True
    )
    old_email: Mapped[str] = mapped_column(String(320))
    new_email: Mapped[str] = mapped_column(String(320))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    confirmed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    reverted_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    superseded_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class EmailChangeToken(Base):
    """A link of an address change: `confirm` (sent to the new address) or `revert` (sent
    to the old one). Only the SHA-256 of its opaque token is stored; it works once
    (`used_at`), until `expires_at`. Written when its email is sent."""

    __tablename__ = "email_change_tokens"

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    change_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("email_changes.id", ondelete="CASCADE"), index=True
    )
    purpose: Mapped[str] = mapped_column(String(16))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    __table_args__ = (CheckConstraint("purpose IN ('confirm', 'revert')", name="purpose_known"),)


class AuditLog(Base):
    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    action: Mapped[str] = mapped_column(String(64))
    # No foreign key on purpose: the trail outlives the users it mentions, and a row about
    # a user deleted meanwhile must still be writable (and keep saying who it was about).
    user_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True), index=True)
    # The job that wrote the row. Rows are written in the transaction that records the job's
    # outcome, under its lease, so a job that runs twice still writes its row once.
    job_id: Mapped[int | None] = mapped_column(BigInteger, index=True)
    details: Mapped[dict[str, Any]] = mapped_column(JSONB, server_default=text("'{}'::jsonb"))
    created_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), index=True
    )
    # When retention stripped the personal data from `details` (`audit.retention`);
    # NULL until then. Only the rows still to strip are in the index that finds them.
    personal_data_removed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    __table_args__ = (
        Index(
            "ix_audit_log_personal_data",
            "created_at",
            postgresql_where=text("personal_data_removed_at IS NULL"),
        ),
    )


class Job(Base):
    """A unit of background work, committed in the same transaction as the change it follows."""

    __tablename__ = "jobs"

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    kind: Mapped[str] = mapped_column(String(64))
    payload: Mapped[dict[str, Any]] = mapped_column(JSONB)
    status: Mapped[str] = mapped_column(String(16), server_default=text("'pending'"))
    attempts: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    run_after: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    lease_token: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))
    leased_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    # Set by an operator's retry: the give-up age then counts from here.
    retried_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # The X-Request-ID of the request that queued it (none for work queued elsewhere): its
    # log lines carry it, so a registration can be followed from the POST to the SMTP 250.
    request_id: Mapped[str | None] = mapped_column(Text)
    # The W3C traceparent of the request's span, when traces are on: the job's span
    # continues that trace (`observability.tracing`).
    trace_context: Mapped[str | None] = mapped_column(Text)

    __table_args__ = (
        CheckConstraint(
            "status IN ('pending', 'running', 'succeeded', 'failed', 'cancelled')",
            name="status_known",
        ),
        # The three ways a job becomes claimable (`jobs.claims`): due, kind by kind (a
        # held kind's backlog is never read); too old to wait for its kind any longer;
        # its lease ran out.
        Index(
            "ix_jobs_due_by_kind",
            "kind",
            "run_after",
            "id",
            postgresql_where=text("status = 'pending'"),
        ),
        Index(
            "ix_jobs_pending_age",
            func.coalesce(retried_at, created_at),
            postgresql_where=text("status = 'pending'"),
        ),
        Index("ix_jobs_lease", "leased_until", postgresql_where=text("status = 'running'")),
        # For /metrics: parked jobs by kind, without reading the succeeded ones.
        Index("ix_jobs_failed", "kind", postgresql_where=text("status = 'failed'")),
        # For retention (`jobs.retention`: the oldest finished jobs of a status, first) and
        # for the operator page's counts of cancelled and recent succeeded jobs by kind,
        # read from the index alone: the finished jobs' rows are never read to count them.
        Index(
            "ix_jobs_finished",
            "status",
            "finished_at",
            "kind",
            postgresql_where=text("status IN ('succeeded', 'failed', 'cancelled')"),
        ),
        # For a person's own emails (`accounts/mail_status.py`), newest first: only the
        # email jobs are in it, so the audit jobs beside them never write to it.
        Index(
            "ix_jobs_email_by_user",
            payload["user_id"].astext,
            id.desc(),
            postgresql_where=text("kind LIKE 'email.%'"),
        ),
    )


class RelayStatus(Base):
    """The mail relay as the senders last saw it; one row per relay.

    Written on each change of state, for people (the CLI, the operator page) and for the
    other processes, which adopt a newer state than their own (backend/mail/relay.py)
    and take turns to probe (`probed_at`: the last probe, or discovery, by any of them)."""

    __tablename__ = "relay_status"

    relay: Mapped[str] = mapped_column(String(255), primary_key=True)
    state: Mapped[str] = mapped_column(String(16))
    since: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    last_error: Mapped[str | None] = mapped_column(Text)
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), onupdate=func.now()
    )
    probed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class MailSendSlot(Base):
    """The next free moment to hand a relay a message, shared by every process and
    replica (backend/mail/pace.py): MAIL_SEND_RATE holds for all of them together.

    UNLOGGED, like the rate-limit counters: a crash that empties it only lets the next
    message go at once, which the spacing then follows again."""

    __tablename__ = "mail_send_slots"
    __table_args__ = ({"prefixes": ["UNLOGGED"]},)

    relay: Mapped[str] = mapped_column(String(255), primary_key=True)
    next_slot: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class RateLimitCounter(Base):
    """The recent hits of one rate-limit key (see backend/ratelimits/postgres.py).

    UNLOGGED: a hit writes no WAL and its commit waits for no disk flush. A Postgres
    crash (or a failover: standbys do not get unlogged tables) empties the table, which
    only forgives the hits counted so far. No index on `expires_at`: an update that
    touches no indexed column can stay on its page (HOT), and the table holds only the
    keys seen in the last period, so the sweep reads it whole.
    """

    __tablename__ = "rate_limit_counters"
    __table_args__ = ({"prefixes": ["UNLOGGED"]},)

    name: Mapped[str] = mapped_column(String(32), primary_key=True)
    # A keyed hash of the client or the email address, never the address itself.
    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    # The hits still inside the period, oldest first: at most the limit's amount of them.
    hits: Mapped[list[datetime]] = mapped_column(ARRAY(DateTime(timezone=True)))
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class EmailSuppression(Base):
    """An address the relay refused for good at `RCPT TO` (no such mailbox): no email to it
    is attempted again until an operator lifts it (`backend/mail/suppressions.py`).

    The address exactly as it was sent, lower-cased: a relay refuses one mailbox, not the
    others its `+tag` spellings reach. `reason` is the relay's answer with the local part
    masked; `job_id` the job whose send was refused (no foreign key: jobs are purged)."""

    __tablename__ = "email_suppressions"

    address: Mapped[str] = mapped_column(Text, primary_key=True)
    reason: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), index=True
    )
    job_id: Mapped[int | None] = mapped_column(BigInteger)
