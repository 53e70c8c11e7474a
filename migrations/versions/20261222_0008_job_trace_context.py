"""jobs.trace_context: the W3C traceparent of the request span that queued the job

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-22

- jobs.trace_context (nullable text): with traces on (the `otel` extra and
  OTEL_EXPORTER_OTLP_ENDPOINT), the job's span continues the request's trace. NULL when
  traces are off, for jobs queued outside a request, and for those queued before this.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("jobs", sa.Column("trace_context", sa.Text(), nullable=True))


def downgrade() -> None:
    op.drop_column("jobs", "trace_context")
