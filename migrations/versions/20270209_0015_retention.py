"""retention: an index on finished jobs, audit rows stripped of personal data, autovacuum

Revision ID: 0015
Revises: 0014
Create Date: 2027-02-09

- ix_jobs_finished (status, finished_at, kind), finished jobs only: retention deletes the
  oldest finished jobs of a status in short batches (`jobs.retention`) without reading the
  rest, and the operator page counts cancelled and recent succeeded jobs by kind from the
  index alone.
- audit_log.personal_data_removed_at, and ix_audit_log_personal_data on created_at for
  the rows still to strip (`audit.retention`): once stripped a row leaves the index, so
  the work is never redone and never re-read.
- Autovacuum for jobs: every claim and every outcome moves a row out of a partial index
  (pending → running → succeeded), leaving a dead entry in the claim indexes that the
  claims walk over until a vacuum removes it. The default waits for 20% of the table to
  be dead, which on a table of millions of finished jobs is hours of claims over
  growing dead entries; 1% (plus a floor of 1,000 rows) vacuums a busy queue every few
  minutes instead, and the statistics the claims' plans rely on stay fresh as well.

The indexes are built CONCURRENTLY, as 0009's and 0014's: every registration writes to
jobs and audit_log, and a plain CREATE INDEX would block those writes while it reads the
table; an index an interrupted run left behind (invalid) is dropped first. The column
has no default, so adding it rewrites nothing.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0015"
down_revision: str | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

AUTOVACUUM = (
    "autovacuum_vacuum_scale_factor = 0.01, autovacuum_vacuum_threshold = 1000, "
    "autovacuum_analyze_scale_factor = 0.02, autovacuum_analyze_threshold = 1000"
)
AUTOVACUUM_NAMES = (
    "autovacuum_vacuum_scale_factor, autovacuum_vacuum_threshold, "
    "autovacuum_analyze_scale_factor, autovacuum_analyze_threshold"
)


def upgrade() -> None:
    op.add_column("audit_log", sa.Column("personal_data_removed_at", sa.DateTime(timezone=True)))
    op.execute(f"ALTER TABLE jobs SET ({AUTOVACUUM})")
    with op.get_context().autocommit_block():
        op.execute("DROP INDEX CONCURRENTLY IF EXISTS ix_jobs_finished")
        op.create_index(
            "ix_jobs_finished",
            "jobs",
            ["status", "finished_at", "kind"],
            postgresql_where=sa.text("status IN ('succeeded', 'failed', 'cancelled')"),
            postgresql_concurrently=True,
        )
        op.execute("DROP INDEX CONCURRENTLY IF EXISTS ix_audit_log_personal_data")
        op.create_index(
            "ix_audit_log_personal_data",
            "audit_log",
            ["created_at"],
            postgresql_where=sa.text("personal_data_removed_at IS NULL"),
            postgresql_concurrently=True,
        )


def downgrade() -> None:
    with op.get_context().autocommit_block():
        op.drop_index(
            "ix_audit_log_personal_data", table_name="audit_log", postgresql_concurrently=True
        )
        op.drop_index("ix_jobs_finished", table_name="jobs", postgresql_concurrently=True)
    op.execute(f"ALTER TABLE jobs RESET ({AUTOVACUUM_NAMES})")
    op.drop_column("audit_log", "personal_data_removed_at")
