"""jobs given up by age, not by count; the relay's state for people

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-24

- jobs.max_attempts goes: a job is given up when it is too old (JOB_MAX_AGE_HOURS),
  counted from its creation or from an operator's retry (jobs.retried_at).
- audit_log loses its (job_id, action) uniqueness: rows are written under the job's
  lease, once per outcome, and a job retried by an operator may give up a second time.
- relay_status: the mail relay as the senders last saw it.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("jobs", sa.Column("retried_at", sa.DateTime(timezone=True), nullable=True))
    op.drop_column("jobs", "max_attempts")
    op.drop_constraint("uq_audit_log_job_id_action", "audit_log", type_="unique")
    op.create_index(op.f("ix_audit_log_job_id"), "audit_log", ["job_id"], unique=False)
    op.create_table(
        "relay_status",
        sa.Column("relay", sa.String(length=255), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("since", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("relay", name=op.f("pk_relay_status")),
    )


def downgrade() -> None:
    op.drop_table("relay_status")
    op.drop_index(op.f("ix_audit_log_job_id"), table_name="audit_log")
    op.create_unique_constraint("uq_audit_log_job_id_action", "audit_log", ["job_id", "action"])
    # The old queue gave up after 15 attempts; jobs keep that budget on the way down.
    op.add_column(
        "jobs",
        sa.Column("max_attempts", sa.Integer(), server_default=sa.text("15"), nullable=False),
    )
    op.alter_column("jobs", "max_attempts", server_default=None)
    op.drop_column("jobs", "retried_at")
