"""jobs: claim indexes that never read a held kind's backlog

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-29

- ix_jobs_due_by_kind (kind, run_after, id) for pending jobs replaces ix_jobs_due
  (run_after): a claim walks each ready kind's due jobs in order and stops at its batch,
  so the emails a relay outage holds back are not read by every claim of the audit jobs.
- ix_jobs_pending_age (coalesce(retried_at, created_at)) for pending jobs: a held job too
  old to wait any longer is found without reading the held ones that may still wait.

Built CONCURRENTLY: every registration writes to jobs, and a plain CREATE INDEX would
block those writes for as long as it reads the table. That cannot run in a transaction,
hence the autocommit block; an index an interrupted run left behind (invalid) is dropped
first.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

PENDING = sa.text("status = 'pending'")


def upgrade() -> None:
    with op.get_context().autocommit_block():
        for name in ("ix_jobs_due_by_kind", "ix_jobs_pending_age"):
            op.execute(f"DROP INDEX CONCURRENTLY IF EXISTS {name}")
        op.create_index(
            "ix_jobs_due_by_kind",
            "jobs",
            ["kind", "run_after", "id"],
            postgresql_where=PENDING,
            postgresql_concurrently=True,
        )
        op.create_index(
            "ix_jobs_pending_age",
            "jobs",
            [sa.text("coalesce(retried_at, created_at)")],
            postgresql_where=PENDING,
            postgresql_concurrently=True,
        )
        op.drop_index("ix_jobs_due", table_name="jobs", postgresql_concurrently=True)


def downgrade() -> None:
    with op.get_context().autocommit_block():
        op.execute("DROP INDEX CONCURRENTLY IF EXISTS ix_jobs_due")
        op.create_index(
            "ix_jobs_due",
            "jobs",
            ["run_after"],
            postgresql_where=PENDING,
            postgresql_concurrently=True,
        )
        op.drop_index("ix_jobs_pending_age", table_name="jobs", postgresql_concurrently=True)
        op.drop_index("ix_jobs_due_by_kind", table_name="jobs", postgresql_concurrently=True)
