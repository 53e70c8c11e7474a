"""Benchmark: what one claim costs beside a backlog of emails that a relay outage holds.

Each process claims at every wake-up, and every registration wakes them all; while the
relay is down, those claims take the audit jobs only, and the held emails pile up
(100,000 at 10 sign-ups a second is under three hours). In a database of its own, beside
held backlogs of several sizes and a few audit jobs, the app's claim (`jobs.claims`) is
timed against the one it replaced, the three ways of being claimable ORed in one query
(kept in `bench/claims.py` as it was), in alternation: with the relay down (only the audit jobs are
ready) and back (a batch of 50 from the backlog). Each claim leases its jobs and is
rolled back, so every one meets the same table; timed from the client, round trip
included, the statement prepared (as asyncpg's cache keeps it).
"""

import statistics
import time
from typing import Any

from sqlalchemy import TextClause, text
from sqlalchemy.ext.asyncio import AsyncEngine

from backend.accounts.welcome_email import KIND as WELCOME_KIND
from backend.audit.job_kind import KIND as AUDIT_KIND
from backend.db import create_engine
from backend.devstack.postgres import create_database, run_alembic
from backend.jobs.claims import CLAIM_FROM_THE_QUEUE

BACKLOGS = (1_000, 10_000, 100_000)
CLAIMS = 200
BATCH = 50

# As it was before migration 0009: kept here, not taken from the app, so that it stays the
# query measured against.
PREVIOUS_CLAIM = text(
    """
WITH picked AS (
    SELECT id FROM jobs
    WHERE ((status = 'pending' AND run_after <= now())
           OR (status = 'running' AND leased_until < now()))
      AND kind = ANY(:known)
      AND (kind = ANY(:ready)
           OR coalesce(retried_at, created_at) < now() - make_interval(secs => :max_age))
    ORDER BY run_after, id
    LIMIT :limit
    FOR UPDATE SKIP LOCKED
)
UPDATE jobs
SET status = 'running',
    attempts = jobs.attempts + 1,
    lease_token = :token,
    leased_until = now() + make_interval(secs => :lease)
FROM picked
WHERE jobs.id = picked.id
RETURNING jobs.id, jobs.kind, jobs.payload, jobs.attempts, jobs.last_error, jobs.request_id,
          jobs.trace_context,
          extract(epoch FROM now() - coalesce(jobs.retried_at, jobs.created_at)) AS age,
          coalesce(jobs.retried_at, jobs.created_at) < now() - make_interval(secs => :max_age)
              AS expired
"""
)


async def _grow_backlog(engine: AsyncEngine, to: int) -> None:
    async with engine.begin() as connection:
        held = await connection.scalar(
            text("SELECT count(*) FROM jobs WHERE kind = :kind"), {"kind": WELCOME_KIND}
        )
        await connection.execute(
            text(
                "INSERT INTO jobs (kind, payload, run_after, created_at) "
                "SELECT :kind, jsonb_build_object('user_id', gen_random_uuid()), "
                "now() - interval '1 hour', now() - interval '1 hour' "
                "FROM generate_series(1, :count)"
            ),
            {"kind": WELCOME_KIND, "count": to - held},
        )
    async with engine.begin() as connection:
        await connection.execute(text("ANALYZE jobs"))  # as autovacuum would have


async def _timed(engine: AsyncEngine, claim: TextClause, params: dict[str, Any]) -> float:
    async with engine.connect() as connection:
        started = time.perf_counter()
        claimed = await connection.execute(claim, params)
        elapsed = time.perf_counter() - started
        assert claimed.all(), "nothing claimed"
        await connection.rollback()
    return elapsed


async def _compare(engine: AsyncEngine, *, ready: list[str]) -> tuple[float, float]:
    params = {
        "ready": ready,
        "known": [AUDIT_KIND, WELCOME_KIND],
        "limit": BATCH,
        "max_age": 5 * 24 * 3600.0,
        "token": "00000000-0000-0000-0000-000000000000",
        "lease": 60.0,
    }
    ours, previous = [], []
    for _ in range(CLAIMS):
        ours.append(await _timed(engine, CLAIM_FROM_THE_QUEUE, params))
        previous.append(await _timed(engine, PREVIOUS_CLAIM, params))
    return statistics.median(ours), statistics.median(previous)


async def run(server_url: str) -> str:
    database_url = await create_database(server_url)
    await run_alembic(database_url, "upgrade", "head")
    engine = create_engine(database_url)
    rows = []
    try:
        async with engine.begin() as connection:
            await connection.execute(
                text(
                    "INSERT INTO jobs (kind, payload) SELECT :kind, '{}' FROM generate_series(1, 5)"
                ),
                {"kind": AUDIT_KIND},
            )
        for backlog in BACKLOGS:
            await _grow_backlog(engine, backlog)
            down = await _compare(engine, ready=[AUDIT_KIND])
            up = await _compare(engine, ready=[AUDIT_KIND, WELCOME_KIND])
            print(
                f"claims beside {backlog:,} held: relay down {down[0] * 1000:.2f} ms "
                f"(previous {down[1] * 1000:.2f} ms), back {up[0] * 1000:.2f} ms "
                f"(previous {up[1] * 1000:.2f} ms)",
                flush=True,
            )
            rows.append(f"| {backlog:,} | {_pair(*down)} | {_pair(*up)} |")
    finally:
        await engine.dispose()
    return "\n".join(
        [
            "## Claims beside a held backlog",
            "",
            __doc__.split("\n\n", 1)[1].strip(),
            "",
            f"| emails held | relay down: the audit jobs (p50 of {CLAIMS}) | relay back: "
            f"a batch of {BATCH} |",
            "| ---: | ---: | ---: |",
            *rows,
            "",
            "Each cell: this claim, the previous one, and their ratio.",
            "",
        ]
    )


def _pair(ours: float, previous: float) -> str:
    ratio = previous / ours
    shown = f"{ratio:.1f}" if ratio < 10 else f"{ratio:.0f}"
    return f"{ours * 1000:.2f} ms against {previous * 1000:.2f} ms ({shown}x)"
