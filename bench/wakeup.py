"""Benchmark: how soon work committed in one process starts in another, and what the
notification costs the transaction that sends it.

- Wake-up latency: this process queues a job through the app's own `enqueue` (it runs no
  worker) and an app process (`uvicorn`, default `JOB_POLL_SECONDS`) runs it; timed on the
  database's clock from just before the COMMIT to the job recorded as done (so claim, run
  and record are all inside), jobs spaced out at random over the poll's cycle.
  With `JOB_NOTIFY` on (the default), then off (polling alone).
- The NOTIFY's cost: a transaction queuing two jobs (a registration's: the welcome email
  and its audit row) through `enqueue`, which adds a `NOTIFY jobs` before the
  COMMIT, against the same rows added without it, in pairs, a listener running.
"""

import asyncio
import random
import statistics
import time
import uuid
from datetime import datetime
from typing import Any

from pydantic import SecretStr
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from backend.audit.job_kind import KIND, audit_payload, enqueue_audit
from backend.db import LISTENER_APPLICATION_NAME, create_engine, create_sessionmaker
from backend.devstack.app_process import AppProcess
from backend.models import Job
from backend.settings import Settings

JOBS = 30
TRANSACTIONS = 1000


async def _scalar(engine: AsyncEngine, sql: str, **params: Any) -> Any:
    async with engine.connect() as connection:
        return await connection.scalar(text(sql), params)


async def _wait_for(engine: AsyncEngine, sql: str, *, within: float = 30, **params: Any) -> Any:
    deadline = time.monotonic() + within
    while (found := await _scalar(engine, sql, **params)) is None:
        if time.monotonic() > deadline:
            raise RuntimeError(f"nothing after {within}s: {sql}")
        await asyncio.sleep(0.005)
    return found


async def _latencies(
    engine: AsyncEngine, sessions: async_sessionmaker[AsyncSession], poll_seconds: float
) -> list[float]:
    run = uuid.uuid4().hex
    delays = []
    # Job -1 is not timed: what a process does once (its recorder connects) is no wake-up.
    for n in range(-1, JOBS):
        # Anywhere in the poll's cycle (the previous job ended just after a look).
        await asyncio.sleep(random.uniform(0.05, poll_seconds))
        async with sessions() as session:
            enqueue_audit(
                session, action="bench.wakeup", user_id=None, details={"run": run, "n": n}
            )
            committing: datetime = await session.scalar(text("SELECT clock_timestamp()"))
            await session.commit()
        done: datetime = await _wait_for(
            engine,
            "SELECT finished_at FROM jobs WHERE status = 'succeeded' "
            "AND payload->'details'->>'run' = :run AND payload->'details'->>'n' = :n",
            run=run,
            n=str(n),
        )
        if n >= 0:
            delays.append((done - committing).total_seconds())
    return delays


async def _commit_seconds(sessions: async_sessionmaker[AsyncSession], *, notify: bool) -> float:
    started = time.perf_counter()
    async with sessions() as session:
        for action in ("bench.email", "bench.audit"):
            if notify:
                enqueue_audit(session, action=action, user_id=None)
            else:
                session.add(Job(kind=KIND, payload=audit_payload(action=action, user_id=None)))
        await session.commit()
    return time.perf_counter() - started


async def _notify_cost(sessions: async_sessionmaker[AsyncSession]) -> tuple[float, float]:
    """The two-job transaction's median seconds without the notification, and the median of
    the paired differences (with minus without: paired, so the machine's drift cancels)."""
    without, added = [], []
    for _ in range(TRANSACTIONS):
        plain = await _commit_seconds(sessions, notify=False)
        without.append(plain)
        added.append(await _commit_seconds(sessions, notify=True) - plain)
    return statistics.median(without), statistics.median(added)


def _app_settings(base: Settings, *, notify: bool) -> Settings:
    return base.model_copy(
        update={
            "environment": "test",
            "secret_key": SecretStr("benchmark-secret-key-not-for-production"),
            "job_notify": notify,
        }
    )


async def run(base: Settings) -> str:
    engine = create_engine(base.database_url)
    sessions = create_sessionmaker(engine)
    try:
        with AppProcess(_app_settings(base, notify=True)) as app:
            await _wait_for(
                engine,
                "SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
                "AND application_name = :name AND query LIKE 'LISTEN %'",
                name=LISTENER_APPLICATION_NAME,
            )
            pushed = await _latencies(engine, sessions, base.job_poll_seconds)
            without, added = await _notify_cost(sessions)
            app.delete_log()
        with AppProcess(_app_settings(base, notify=False)) as app:
            await asyncio.sleep(1)  # past its start-up look
            polled = await _latencies(engine, sessions, base.job_poll_seconds)
            app.delete_log()
    finally:
        await engine.dispose()
    print(
        f"wake-up p50 with NOTIFY {statistics.median(pushed) * 1000:.1f} ms, "
        f"polling {statistics.median(polled) * 1000:.0f} ms; NOTIFY adds "
        f"{added * 1e6:+.0f} µs to a {without * 1000:.2f} ms transaction",
        flush=True,
    )
    return "\n".join(
        [
            "## Wake-ups across processes: NOTIFY against polling",
            "",
            __doc__.split("\n\n", 1)[1].strip(),
            "",
            f"| committed → done in another process ({JOBS} jobs) | p50 | p95 | max |",
            "| --- | ---: | ---: | ---: |",
            _row(f"`JOB_NOTIFY` on, `JOB_POLL_SECONDS` {base.job_poll_seconds:g}", pushed),
            _row(f"`JOB_NOTIFY` off, `JOB_POLL_SECONDS` {base.job_poll_seconds:g}", polled),
            "",
            f"A transaction queuing two jobs takes **{without * 1000:.2f} ms** without the "
            f"notification; with it, **{added * 1e6:+.0f} µs** (median of {TRANSACTIONS} "
            "paired differences): one round trip more.",
            "",
        ]
    )


def _row(label: str, seconds: list[float]) -> str:
    ordered = sorted(seconds)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    figures = (statistics.median(ordered), p95, ordered[-1])
    return f"| {label} | " + " | ".join(_ms(value) for value in figures) + " |"


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f} ms" if seconds < 0.1 else f"{seconds * 1000:.0f} ms"
