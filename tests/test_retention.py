"""Retention of finished jobs: short batches through `ix_jobs_finished`, one process at a
time, and an operator page that counts without reading the finished jobs. Real Postgres;
plans measured as Postgres reports them (EXPLAIN), as `test_claim_reads.py` does."""

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from backend.jobs import admin
from backend.jobs.retention import (
    LOCK_KEY,
    Retention,
    RetentionTask,
    finished_jobs,
    purge_statement,
)
from backend.jobs.runner import JobRunner, RunnerConfig
from tests.support.helpers import execute, rows


@pytest.fixture
async def worker_engines(database_url: str, clean: None) -> AsyncIterator[list[AsyncEngine]]:
    """Two independent engines (own connection pools): two processes."""
    engines = [create_async_engine(database_url) for _ in range(2)]
    yield engines
    for engine in engines:
        await engine.dispose()


async def _jobs(engine: AsyncEngine, *, status: str, count: int, age: str | None) -> None:
    """`count` jobs in `status`, finished `age` ago (None: not finished)."""
    await execute(
        engine,
        "INSERT INTO jobs (kind, payload, status, finished_at) "
        "SELECT 'audit.write', '{}', :status, now() - CAST(CAST(:age AS text) AS interval) "
        "FROM generate_series(1, :count)",
        status=status,
        count=count,
        age=age,
    )


def _retention(engine: AsyncEngine, *, batch_size: int) -> Retention:
    tasks = [
        finished_jobs("succeeded", older_than_days=14),
        finished_jobs("failed", older_than_days=30),
        finished_jobs("cancelled", older_than_days=30),
    ]
    sessionmaker = async_sessionmaker(engine, expire_on_commit=False)
    return Retention(sessionmaker, tasks, batch_size=batch_size, pause_seconds=0.01)


async def _left(engine: AsyncEngine) -> dict[tuple[str, int], int]:
    """{(status, days since finished): jobs}"""
    found = await rows(
        engine,
        "SELECT status, coalesce(extract(day FROM now() - finished_at), -1)::int AS days, "
        "count(*) AS jobs FROM jobs GROUP BY 1, 2",
    )
    return {(row["status"], row["days"]): row["jobs"] for row in found}


async def _setup_mixed(engine: AsyncEngine) -> None:
    await _jobs(engine, status="succeeded", count=45, age="20 days")  # purged
    await _jobs(engine, status="succeeded", count=5, age="10 days")
    await _jobs(engine, status="failed", count=23, age="40 days")  # purged
    await _jobs(engine, status="failed", count=4, age="20 days")
    await _jobs(engine, status="cancelled", count=12, age="40 days")  # purged
    await _jobs(engine, status="cancelled", count=3, age="20 days")
    await _jobs(engine, status="pending", count=6, age=None)
    await execute(
        engine,
        "INSERT INTO jobs (kind, payload, status, leased_until, created_at) "
        "SELECT 'audit.write', '{}', 'running', now() + interval '1 minute', "
        "now() - interval '90 days' FROM generate_series(1, 2)",
    )


async def test_batches_delete_exactly_the_old_finished_jobs(
    engine: AsyncEngine, clean: None
) -> None:
    await _setup_mixed(engine)

    done = await _retention(engine, batch_size=10).run_round()  # several batches each

    assert done == {"succeeded jobs": 45, "failed jobs": 23, "cancelled jobs": 12}
    assert await _left(engine) == {
        ("succeeded", 10): 5,
        ("failed", 20): 4,
        ("cancelled", 20): 3,
        ("pending", -1): 6,
        ("running", -1): 2,  # however old: a running job is never purged
    }
    assert await _retention(engine, batch_size=10).run_round() == dict.fromkeys(done, 0)


async def test_two_processes_purging_at_once_share_the_work(
    engine: AsyncEngine, worker_engines: list[AsyncEngine]
) -> None:
    await _setup_mixed(engine)
    await _jobs(engine, status="succeeded", count=2000, age="15 days")
    rounds = [_retention(e, batch_size=50) for e in worker_engines]

    done = await asyncio.wait_for(asyncio.gather(*(r.run_round() for r in rounds)), 120)

    # Every old job deleted once, none twice, no deadlock (the gather's timeout), and
    # the rest untouched.
    assert sum(d["succeeded jobs"] for d in done) == 2045
    assert sum(d["failed jobs"] for d in done) == 23
    assert sum(d["cancelled jobs"] for d in done) == 12
    assert sum((await _left(engine)).values()) == 5 + 4 + 3 + 6 + 2


async def test_a_round_stops_while_another_process_holds_the_lock(
    engine: AsyncEngine, worker_engines: list[AsyncEngine]
) -> None:
    await _jobs(engine, status="succeeded", count=5, age="20 days")
    async with engine.connect() as holder:
        await holder.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": LOCK_KEY})
        done = await _retention(worker_engines[0], batch_size=10).run_round()
        await holder.rollback()

    assert done == {"succeeded jobs": 0, "failed jobs": 0, "cancelled jobs": 0}
    assert await _left(engine) == {("succeeded", 20): 5}
    assert (await _retention(worker_engines[0], batch_size=10).run_round())["succeeded jobs"] == 5


def _nodes(plan: dict[str, Any]) -> list[dict[str, Any]]:
    return [plan, *(node for child in plan.get("Plans", []) for node in _nodes(child))]


async def _explain(engine: AsyncEngine, sql: str, **params: Any) -> list[dict[str, Any]]:
    """The plan's nodes, run for real (ANALYZE) in a transaction rolled back."""
    async with engine.connect() as connection:
        explained = await connection.scalar(
            text(f"EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) {sql}"), params
        )
        await connection.rollback()
    [plan] = json.loads(explained) if isinstance(explained, str) else explained
    return _nodes(plan["Plan"])


async def _many_jobs(engine: AsyncEngine) -> None:
    """A table mostly of succeeded jobs, as months of traffic leave it, vacuumed and
    analyzed as autovacuum would have."""
    await _jobs(engine, status="succeeded", count=6000, age="3 days")
    await _jobs(engine, status="succeeded", count=300, age="20 days")
    await _jobs(engine, status="succeeded", count=7, age="1 hour")
    await _jobs(engine, status="failed", count=4, age="1 day")
    await _jobs(engine, status="cancelled", count=3, age="40 days")
    await _jobs(engine, status="pending", count=5, age=None)
    async with engine.connect() as connection:
        autocommit = await connection.execution_options(isolation_level="AUTOCOMMIT")
        await autocommit.execute(text("VACUUM ANALYZE jobs"))


async def test_a_purge_batch_reads_the_finished_index_not_the_table(
    engine: AsyncEngine, clean: None
) -> None:
    await _many_jobs(engine)

    for status in ("succeeded", "failed", "cancelled"):
        nodes = await _explain(engine, purge_statement(status), age=14 * 86400, limit=100)
        scans = [(n["Node Type"], n.get("Index Name")) for n in nodes if "Scan" in n["Node Type"]]
        assert all(kind != "Seq Scan" for kind, _ in scans), f"{status}: {scans}"
        assert ("Index Scan", "ix_jobs_finished") in scans, f"{status}: {scans}"
        read = sum(
            n["Actual Rows"] * n["Actual Loops"] + n.get("Rows Removed by Filter", 0)
            for n in nodes
            if n.get("Index Name") == "ix_jobs_finished"
        )
        assert read <= 100, f"{status}: read {read} index entries for a batch of 100"


async def test_the_operator_page_counts_read_no_old_succeeded_job(
    engine: AsyncEngine, clean: None
) -> None:
    await _many_jobs(engine)

    nodes = await _explain(engine, admin.COUNTS.text)

    on_jobs = [n for n in nodes if n.get("Relation Name") == "jobs"]
    assert on_jobs and all(n["Node Type"] != "Seq Scan" for n in on_jobs), on_jobs
    # What was read: the 12 jobs not finished for good or recent, and the last day's 7
    # succeeded, from the index alone (no heap fetch after a vacuum), never the 6,300 older.
    read = sum(
        n["Actual Rows"] * n["Actual Loops"]
        + n.get("Rows Removed by Filter", 0)
        + n.get("Rows Removed by Index Recheck", 0)
        for n in on_jobs
    )
    assert read <= 5 + 4 + 3 + 7, f"read {read} rows of jobs to count them"
    assert sum(n.get("Heap Fetches", 0) for n in on_jobs) == 0
    async with async_sessionmaker(engine)() as session:
        assert await admin.status_counts(session) == {
            "pending": 5,
            "running": 0,
            "succeeded": 7,
            "failed": 4,
            "cancelled": 3,
        }


async def test_the_runner_purges_soon_after_start_up_with_the_features_tasks(
    engine: AsyncEngine, clean: None
) -> None:
    await _jobs(engine, status="succeeded", count=3, age="20 days")
    await _jobs(engine, status="failed", count=2, age="20 days")  # kept: 30 days for failed
    feature_rounds: list[int] = []
    called = asyncio.Event()

    async def feature_batch(session: AsyncSession, limit: int) -> int:
        feature_rounds.append(limit)
        called.set()
        return 0

    runner = JobRunner(
        sessionmaker=async_sessionmaker(engine, expire_on_commit=False),
        handlers={},
        config=RunnerConfig(purge_first_after_seconds=(0.0, 0.5), poll_seconds=0.5),
        retention_tasks=[RetentionTask(name="feature rows", batch=feature_batch)],
    )
    runner.start()
    try:
        # The features' tasks come after the jobs' in a round: by then those are committed.
        await asyncio.wait_for(called.wait(), 60)
    finally:
        await runner.stop()

    assert await _left(engine) == {("failed", 20): 2}
    assert feature_rounds == [1000]


async def test_the_operator_page_counts_a_state_without_reading_the_finished_jobs(
    engine: AsyncEngine, clean: None
) -> None:
    await _many_jobs(engine)

    for status, count in [("failed", 4), ("cancelled", 3), ("pending", 5)]:
        query = admin.count_query(statuses=[status])
        sql = str(query.compile(dialect=engine.dialect, compile_kwargs={"literal_binds": True}))
        nodes = await _explain(engine, sql)
        on_jobs = [n for n in nodes if n.get("Relation Name") == "jobs"]
        assert all(n["Node Type"] != "Seq Scan" for n in on_jobs), (status, on_jobs)
        read = sum(n["Actual Rows"] + n.get("Rows Removed by Filter", 0) for n in on_jobs)
        assert read <= count, f"{status}: read {read} rows to count {count}"
        async with async_sessionmaker(engine)() as session:
            assert (await admin.count_jobs(session, statuses=[status]))[0] == count


async def test_the_jobs_table_vacuums_sooner_than_the_default(engine: AsyncEngine) -> None:
    [row] = await rows(engine, "SELECT reloptions FROM pg_class WHERE relname = 'jobs'")
    assert {"autovacuum_vacuum_scale_factor=0.01", "autovacuum_vacuum_threshold=1000"} <= set(
        row["reloptions"]
    )
