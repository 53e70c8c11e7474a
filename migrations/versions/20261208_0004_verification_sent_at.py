"""users.verification_sent_at: when the latest verification link was queued

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-08

- users.verification_sent_at: set at registration and at each verification resend. An
  unverified account whose latest link expired more than UNVERIFIED_ACCOUNT_GRACE_HOURS
  ago no longer holds its username and email. Existing rows take their created_at: their
  only link so far is the welcome email's.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "users",
        sa.Column(
            "verification_sent_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=True,
        ),
    )
    op.execute("UPDATE users SET verification_sent_at = created_at")
    op.alter_column("users", "verification_sent_at", nullable=False)


def downgrade() -> None:
    op.drop_column("users", "verification_sent_at")
