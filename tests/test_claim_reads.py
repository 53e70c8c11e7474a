"""A claim reads about as many rows as it claims, however long the queue. A relay outage
holds thousands of emails back while sign-ups go on; the audit jobs queued behind them are
still claimed without reading them, and held emails too old to wait are found without
reading the rest. Measured as Postgres counts it: EXPLAIN ANALYZE of the claim itself, in
a transaction rolled back."""

import json
from datetime import timedelta
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from backend.accounts.welcome_email import KIND as WELCOME_KIND
from backend.audit.job_kind import KIND as AUDIT_KIND
from backend.jobs.claims import CLAIM_FROM_THE_QUEUE

BACKLOG = 5000
MAX_AGE_SECONDS = 2 * 3600


async def _queue(engine: AsyncEngine, *, kind: str, count: int, age: timedelta) -> None:
    async with engine.begin() as connection:
        await connection.execute(
            text(
                "INSERT INTO jobs (kind, payload, run_after, created_at) "
                "SELECT :kind, '{}', now() - CAST(:age AS interval), "
                "now() - CAST(:age AS interval) FROM generate_series(1, :count)"
            ),
            {"kind": kind, "count": count, "age": age},
        )


def _jobs_rows_read(plan: dict[str, Any]) -> int:
    """Rows the plan's nodes took from the jobs table, kept or filtered out."""
    read = 0
    if plan.get("Relation Name") == "jobs":
        kept = plan["Actual Rows"] * plan["Actual Loops"]
        read += kept + plan.get("Rows Removed by Filter", 0)
        read += plan.get("Rows Removed by Index Recheck", 0)
    return read + sum(_jobs_rows_read(child) for child in plan.get("Plans", []))


async def _claim_explained(
    engine: AsyncEngine, *, ready: list[str], limit: int = 40
) -> tuple[list[str], int]:
    """The kinds a claim would take, and the rows it read for them; nothing is kept."""
    known = [AUDIT_KIND, WELCOME_KIND]
    params = {"ready": ready, "known": known, "limit": limit, "max_age": MAX_AGE_SECONDS}
    params |= {"token": "00000000-0000-0000-0000-000000000000", "lease": 30.0}
    async with engine.connect() as connection:
        explained = await connection.scalar(
            text(f"EXPLAIN (ANALYZE, FORMAT JSON) {CLAIM_FROM_THE_QUEUE.text}"), params
        )
        claimed = await connection.execute(
            text("SELECT kind FROM jobs WHERE status = 'running' ORDER BY id")
        )
        kinds = [row.kind for row in claimed]
        await connection.rollback()
    [plan] = json.loads(explained) if isinstance(explained, str) else explained
    return kinds, _jobs_rows_read(plan["Plan"])


async def test_a_claim_does_not_read_the_backlog_its_relay_holds(
    engine: AsyncEngine, clean: None
) -> None:
    await _queue(engine, kind=WELCOME_KIND, count=10, age=timedelta(hours=3))  # too old to wait
    await _queue(engine, kind=WELCOME_KIND, count=BACKLOG, age=timedelta(hours=1))
    await _queue(engine, kind=AUDIT_KIND, count=3, age=timedelta(seconds=1))
    async with engine.begin() as connection:
        await connection.execute(text("ANALYZE jobs"))  # as autovacuum would have

    # The relay is down: the audit jobs, and the emails too old to wait (to give up).
    kinds, read = await _claim_explained(engine, ready=[AUDIT_KIND])
    assert sorted(kinds) == [AUDIT_KIND] * 3 + [WELCOME_KIND] * 10
    # Each way of being claimable reads at most a batch (40) and the lease reads what was
    # picked: a few batches' worth at most, whatever the backlog (5,000 here, all of which
    # the previous claim read).
    assert read <= 4 * 40, f"read {read} rows to claim {len(kinds)}"

    # It is back: a batch in queue order, oldest first, the rest unread.
    kinds, read = await _claim_explained(engine, ready=[AUDIT_KIND, WELCOME_KIND], limit=40)
    assert kinds == [WELCOME_KIND] * 40
    assert read <= 4 * 40, f"read {read} rows to claim {len(kinds)}"
