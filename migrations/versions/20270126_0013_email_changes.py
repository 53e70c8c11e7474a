"""email changes: an address change waits for the new address's confirmation, and the
old address can undo it

Revision ID: 0013
Revises: 0012
Create Date: 2027-01-26

- email_changes: one row per change asked for: the account, the old and the new address,
  and when it was confirmed, reverted or superseded by a newer request. Deleted with its
  user.
- email_change_tokens: one row per link sent (`confirm` to the new address, `revert` to
  the old one): the SHA-256 of its opaque token (unique), when it was made and expires,
  and when it was used. Deleted with its change.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "email_changes",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("user_id", postgresql.UUID(as_uuid=True), nullable=False),
        sa.Column("old_email", sa.String(length=320), nullable=False),
        sa.Column("new_email", sa.String(length=320), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("confirmed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("reverted_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("superseded_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_email_changes_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_email_changes")),
    )
    op.create_index(op.f("ix_email_changes_user_id"), "email_changes", ["user_id"], unique=False)
    op.create_table(
        "email_change_tokens",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("change_id", sa.BigInteger(), nullable=False),
        sa.Column("purpose", sa.String(length=16), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("used_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "purpose IN ('confirm', 'revert')",
            name=op.f("ck_email_change_tokens_purpose_known"),
        ),
        sa.ForeignKeyConstraint(
            ["change_id"],
            ["email_changes.id"],
            name=op.f("fk_email_change_tokens_change_id_email_changes"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_email_change_tokens")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_email_change_tokens_token_hash")),
    )
    op.create_index(
        op.f("ix_email_change_tokens_change_id"),
        "email_change_tokens",
        ["change_id"],
        unique=False,
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_email_change_tokens_change_id"), table_name="email_change_tokens")
    op.drop_table("email_change_tokens")
    op.drop_index(op.f("ix_email_changes_user_id"), table_name="email_changes")
    op.drop_table("email_changes")
