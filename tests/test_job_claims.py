"""The queue's promises: claims are exclusive, leases protect live work and expire on dead
work, the user and its jobs commit together, backoff stays in its bounds."""

import asyncio
import time
from collections import Counter
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Sequence

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from backend.accounts.schemas import RegistrationIn
from backend.accounts.service import register
from backend.audit.job_kind import KIND as AUDIT_KIND
from backend.audit.job_kind import AuditHandler
from backend.jobs import outbox
from backend.jobs.handlers import Outcome
from backend.jobs.outbox import ClaimedJob
from backend.jobs.runner import JobRunner, RunnerConfig
from backend.settings import Settings
from tests.support.durability import HASHER, claim_as_worker, job_states, refusing_inserts
from tests.support.helpers import PASSWORD, mail_limit, rows


async def _insert_audit_jobs(engine: AsyncEngine, count: int) -> None:
    async with engine.begin() as connection:
        await connection.execute(
            text(
                "INSERT INTO jobs (kind, payload) "
                "SELECT :kind, jsonb_build_object('action', 'test.job', 'details', "
                "jsonb_build_object('n', n)) FROM generate_series(1, :count) AS n"
            ),
            {"kind": AUDIT_KIND, "count": count},
        )


class CountingHandler:
    """Writes audit rows like the real handler, and counts every execution per job."""

    def __init__(self) -> None:
        self.runs: Counter[int] = Counter()
        self.release = asyncio.Event()
        self.release.set()

    async def run(
        self, jobs: Sequence[ClaimedJob]
    ) -> AsyncGenerator[tuple[ClaimedJob, Outcome], None]:
        self.runs.update(job.id for job in jobs)
        await self.release.wait()
        async for settled in AuditHandler().run(jobs):
            yield settled

    async def on_give_up(self, session: AsyncSession, job: ClaimedJob, error: str) -> None:
        pass

    def ready(self) -> bool:
        return True


@pytest.fixture
async def worker_engines(database_url: str, clean: None) -> AsyncIterator[list[AsyncEngine]]:
    """Two independent engines (own connection pools): two workers, as in two processes."""
    engines = [create_async_engine(database_url) for _ in range(2)]
    yield engines
    for engine in engines:
        await engine.dispose()


async def _wait_for(condition: Callable[[], bool], *, within: float) -> None:
    deadline = time.monotonic() + within
    while not condition():
        assert time.monotonic() < deadline, f"still not so after {within}s"
        await asyncio.sleep(0.05)


def _runner(engine: AsyncEngine, handler: CountingHandler, **config: float) -> JobRunner:
    return JobRunner(
        sessionmaker=async_sessionmaker(engine, expire_on_commit=False),
        handlers={AUDIT_KIND: handler},
        config=RunnerConfig(**config),  # type: ignore[arg-type]
    )


async def test_two_workers_racing_for_1000_jobs_run_each_exactly_once(
    worker_engines: list[AsyncEngine], engine: AsyncEngine
) -> None:
    await _insert_audit_jobs(engine, 1000)
    handlers = [CountingHandler(), CountingHandler()]
    runners = [_runner(e, h, batch_size=25) for e, h in zip(worker_engines, handlers, strict=True)]

    drained = await asyncio.gather(*(runner.drain() for runner in runners))

    runs = handlers[0].runs + handlers[1].runs
    assert sum(drained) == 1000
    assert len(runs) == 1000 and set(runs.values()) == {1}  # none twice, none left out
    assert not set(handlers[0].runs) & set(handlers[1].runs)
    assert all(count > 0 for count in drained), f"one worker did everything: {drained}"
    assert await job_states(engine) == {"succeeded": 1000}
    [audit] = await rows(engine, "SELECT count(*) AS n FROM audit_log")
    assert audit["n"] == 1000


@pytest.mark.slow
async def test_a_live_job_is_not_stolen_while_its_worker_heartbeats(
    worker_engines: list[AsyncEngine], engine: AsyncEngine
) -> None:
    await _insert_audit_jobs(engine, 1)
    slow, other = CountingHandler(), CountingHandler()
    slow.release.clear()
    # A heartbeat every 2 s, each with 4 s to spare: a 2 s lease (a beat every 0.67 s)
    # was once lost on a CI machine loaded past its cores, and the job stolen.
    lease = 6.0
    busy = _runner(worker_engines[0], slow, lease_seconds=lease)
    thief = _runner(worker_engines[1], other, lease_seconds=lease)

    working = asyncio.create_task(busy.run_due())
    try:
        await _wait_for(lambda: bool(slow.runs), within=10)  # claimed and running
        # Two leases: past the first, only the heartbeat keeps the job from the thief.
        deadline = time.monotonic() + 2 * lease
        while time.monotonic() < deadline:
            assert await thief.run_due() == 0
            await asyncio.sleep(0.2)
        [held] = await rows(engine, "SELECT status, leased_until > now() AS leased FROM jobs")
        assert held == {"status": "running", "leased": True}
    finally:
        # Released whatever happened: a batch left hanging would fail the next test.
        slow.release.set()
    assert await working == 1

    assert dict(slow.runs) == {1: 1} and not other.runs
    [job] = await rows(engine, "SELECT status, attempts FROM jobs")
    assert job == {"status": "succeeded", "attempts": 1}


async def test_a_dead_workers_job_is_taken_over_after_its_lease(
    worker_engines: list[AsyncEngine], engine: AsyncEngine
) -> None:
    await _insert_audit_jobs(engine, 1)
    lease = 2.0
    # A worker claims the job and dies: nothing heartbeats, nothing finishes.
    before_claim = time.monotonic()
    [dead_claim] = await claim_as_worker(worker_engines[0], kinds=[AUDIT_KIND], lease_seconds=lease)
    survivor_handler = CountingHandler()
    survivor = _runner(worker_engines[1], survivor_handler)

    assert await survivor.run_due() == 0  # the lease still holds
    deadline = time.monotonic() + lease + 10
    taken = 0
    while not taken:
        assert time.monotonic() < deadline, "the lease ran out, yet no one took the job over"
        await asyncio.sleep(0.1)
        taken = await survivor.run_due()
    assert taken == 1
    # The lease counts on the database's clock from the claim, which came after before_claim.
    assert time.monotonic() - before_claim >= lease

    [job] = await rows(engine, "SELECT status, attempts FROM jobs")
    assert job == {"status": "succeeded", "attempts": 2}
    # Were the first worker only slow, its late word changes nothing: the lease is fenced.
    async with async_sessionmaker(worker_engines[0])() as session, session.begin():
        assert await outbox.mark_succeeded(session, [dead_claim]) == set()
        assert await outbox.mark_for_retry(session, dead_claim, error="x", delay_seconds=0) is False


async def test_user_and_jobs_commit_together_or_not_at_all(
    engine: AsyncEngine, settings: Settings
) -> None:
    # Make the job insert fail inside the registration transaction, after the user insert.
    data = RegistrationIn(username="half", email="half@example.com", password=PASSWORD)
    async with (
        refusing_inserts(engine, "jobs") as refusal,
        async_sessionmaker(engine)() as session,
    ):
        with pytest.raises(DBAPIError, match=refusal):
            await register(
                session,
                data=data,
                channel="api",
                sender_address=settings.mail_from,
                smtputf8=False,
                hasher=HASHER,
                mail_limit=mail_limit(engine, settings),
            )

    assert await rows(engine, "SELECT id FROM users") == []
    assert await rows(engine, "SELECT id FROM jobs") == []


@pytest.mark.parametrize("attempt", range(1, 15))
def test_backoff_grows_exponentially_with_jitter_and_a_cap(attempt: int) -> None:
    ceiling = min(600.0, 2.0 * 2 ** (attempt - 1))
    delays = [outbox.backoff_seconds(attempt, base=2.0, cap=600.0) for _ in range(200)]
    assert all(ceiling / 2 <= d <= ceiling for d in delays)
    assert len(set(delays)) > 100  # jittered, not one fixed delay


def test_a_messages_first_five_retries_fall_within_a_minute() -> None:
    # The longest of many drawn waits for each of the first five retries, at the defaults.
    settings = Settings(_env_file=None, environment="development")
    waits = [
        [
            outbox.backoff_seconds(
                n, base=settings.job_retry_base_seconds, cap=settings.job_retry_cap_seconds
            )
            for _ in range(500)
        ]
        for n in range(1, 6)
    ]
    assert 31 <= sum(max(w) for w in waits) <= 62  # about a minute, not seconds or hours
    assert sum(min(w) for w in waits) >= 15  # and spread out: no retry storm


async def test_old_succeeded_jobs_are_purged_and_failed_ones_kept(
    engine: AsyncEngine, worker_engines: list[AsyncEngine]
) -> None:
    await _insert_audit_jobs(engine, 4)
    async with engine.begin() as connection:
        await connection.execute(
            text(
                "UPDATE jobs SET status = CASE WHEN id % 2 = 0 THEN 'succeeded' ELSE 'failed' END, "
                "finished_at = now() - CASE WHEN id <= 2 THEN interval '20 days' "
                "ELSE interval '1 day' END"
            )
        )
    runner = _runner(worker_engines[0], CountingHandler(), retention_days=14)

    assert await runner.purge() == 1

    remaining = await rows(engine, "SELECT id, status FROM jobs ORDER BY id")
    assert remaining == [
        {"id": 1, "status": "failed"},  # old, but failed: kept for a person to look at
        {"id": 3, "status": "failed"},
        {"id": 4, "status": "succeeded"},  # recent
    ]
