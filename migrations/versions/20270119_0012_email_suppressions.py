"""email suppressions: addresses the relay refused for good at RCPT TO

Revision ID: 0012
Revises: 0011
Create Date: 2027-01-19

- email_suppressions: one row per address the relay answered "no such mailbox" (a 5xx at
  RCPT TO about the mailbox itself): the address as sent, lower-cased (primary key), the
  relay's answer with the local part masked, when, and the job whose send was refused (no
  foreign key: jobs are purged). No email to it is attempted until an operator lifts it.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "email_suppressions",
        sa.Column("address", sa.Text(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("job_id", sa.BigInteger(), nullable=True),
        sa.PrimaryKeyConstraint("address", name=op.f("pk_email_suppressions")),
    )
    op.create_index(
        op.f("ix_email_suppressions_created_at"),
        "email_suppressions",
        ["created_at"],
        unique=False,
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_email_suppressions_created_at"), table_name="email_suppressions")
    op.drop_table("email_suppressions")
