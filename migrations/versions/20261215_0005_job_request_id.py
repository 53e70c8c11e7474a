"""jobs.request_id: the X-Request-ID of the request that queued the job

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-15

- jobs.request_id (nullable text): the job's log lines carry it. Jobs queued outside a
  request (and those queued before this migration) have none.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("jobs", sa.Column("request_id", sa.Text(), nullable=True))


def downgrade() -> None:
    op.drop_column("jobs", "request_id")
