"""jobs: a partial index on the email jobs' user, for a person's own emails

Revision ID: 0014
Revises: 0013
Create Date: 2027-02-02

- ix_jobs_email_by_user: `GET /api/me/emails`, `/account` and `/register/done` read the
  email jobs of one user (`payload->>'user_id'`), newest first, without reading anyone
  else's. Only email jobs are in it (`kind LIKE 'email.%'`): the audit jobs, queued
  beside most of them, never write to it.

Built CONCURRENTLY, as 0009's: every registration writes to jobs, and a plain CREATE
INDEX would block those writes while it reads the table; an index an interrupted run left
behind (invalid) is dropped first.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.get_context().autocommit_block():
        op.execute("DROP INDEX CONCURRENTLY IF EXISTS ix_jobs_email_by_user")
        op.create_index(
            "ix_jobs_email_by_user",
            "jobs",
            [sa.text("(payload ->> 'user_id')"), sa.text("id DESC")],
            postgresql_where=sa.text("kind LIKE 'email.%'"),
            postgresql_concurrently=True,
        )


def downgrade() -> None:
    with op.get_context().autocommit_block():
        op.drop_index("ix_jobs_email_by_user", table_name="jobs", postgresql_concurrently=True)
