"""jobs: a partial index on the failed jobs' kind, for GET /metrics

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-15

- ix_jobs_failed: `/metrics` counts the jobs by kind in each live state (pending and
  running through their own partial indexes, failed through this one) without reading
  the succeeded jobs, which are most of the table until JOB_RETENTION_DAYS purges them.
  Only rows in the failed state are in it: a delivery (pending, running, succeeded) never
  writes to it.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index(
        "ix_jobs_failed", "jobs", ["kind"], postgresql_where=sa.text("status = 'failed'")
    )


def downgrade() -> None:
    op.drop_index("ix_jobs_failed", table_name="jobs")
