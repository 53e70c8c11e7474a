"""mail_send_slots: MAIL_SEND_RATE counted across every process and replica

Revision ID: 0016
Revises: 0015
Create Date: 2027-02-16

- mail_send_slots: one row per relay, the next free moment to hand it a message. Each
  process reserves a few slots at a time with one upsert (backend/mail/pace.py), so the
  processes together keep the rate. UNLOGGED: a crash that empties it only lets the next
  message go at once.
- relay_status.probed_at: when any process last probed the relay (or found it down), so
  that they take turns to probe instead of each probing on its own.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0016"
down_revision: str | None = "0015"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "mail_send_slots",
        sa.Column("relay", sa.String(length=255), nullable=False),
        sa.Column("next_slot", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("relay", name=op.f("pk_mail_send_slots")),
        prefixes=["UNLOGGED"],
    )
    op.add_column("relay_status", sa.Column("probed_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    op.drop_column("relay_status", "probed_at")
    op.drop_table("mail_send_slots")
