"""jobs.status 'cancelled': jobs an operator stopped from the operator page or the CLI

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-15

- jobs.status may be 'cancelled': a pending or failed job an operator cancelled. The
  queue claims only pending (or lease-expired running) jobs, and retries only pending or
  failed ones, so a cancelled job never runs again. Downgrading turns cancelled jobs
  into failed ones (which only an operator's retry would run).
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_NAME = "ck_jobs_status_known"


def upgrade() -> None:
    op.drop_constraint(op.f(_NAME), "jobs", type_="check")
    op.create_check_constraint(
        op.f(_NAME), "jobs", "status IN ('pending', 'running', 'succeeded', 'failed', 'cancelled')"
    )


def downgrade() -> None:
    op.execute("UPDATE jobs SET status = 'failed' WHERE status = 'cancelled'")
    op.drop_constraint(op.f(_NAME), "jobs", type_="check")
    op.create_check_constraint(
        op.f(_NAME), "jobs", "status IN ('pending', 'running', 'succeeded', 'failed')"
    )
