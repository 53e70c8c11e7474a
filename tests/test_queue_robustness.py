"""The queue's own robustness: a lost lease stops sending, a poison payload fails alone, an
unknown kind is left for the process that knows it, a give-up hook that raises still parks,
and a failure's rows and callback count only under the lease."""

import asyncio
import functools
from collections.abc import AsyncGenerator, Sequence
from dataclasses import dataclass

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from backend.context import AppContext
from backend.devstack.smtp_proxy import SmtpProxy
from backend.jobs.handlers import Failed, Outcome
from backend.jobs.outbox import ClaimedJob
from backend.jobs.runner import JobRunner, RunnerConfig
from backend.settings import Settings
from tests.support.durability import drain_once, job_states, queue_backlog, through_proxy
from tests.support.helpers import rows
from tests.support.mailhog import MailEndpoints, MailHog


@pytest.mark.timeout(60)
async def test_a_batch_whose_lease_was_taken_over_stops_sending(
    settings: Settings, mail_endpoints: MailEndpoints, engine: AsyncEngine, mailhog: MailHog
) -> None:
    await queue_backlog(engine, 30)
    # 50 ms each way: about half a second per email, and a heartbeat every 0.5 s.
    with SmtpProxy(mail_endpoints.smtp_host, mail_endpoints.smtp_port, one_way_delay=0.05) as slow:
        context = AppContext.build(
            through_proxy(
                settings, slow, job_lease_seconds=1.5, job_batch_size=30, job_concurrency=1
            )
        )
        try:
            batch = asyncio.create_task(context.runner.run_due())
            await mailhog.wait_for(1, within=20)
            # Another worker takes the whole batch over (as after a long pause of this one).
            async with engine.begin() as connection:
                await connection.execute(
                    text("UPDATE jobs SET lease_token = gen_random_uuid() WHERE status = 'running'")
                )
            stolen_at = len(await mailhog.messages())
            await asyncio.wait_for(batch, timeout=20)
        finally:
            await context.close()

    # The heartbeat (every 0.5 s) found the lease gone; at most the email then in flight
    # and one more heartbeat's worth went out, not the rest of the 30.
    sent = len(await mailhog.messages())
    assert sent <= stolen_at + 2, f"{sent} sent, {stolen_at} when the lease was taken"
    assert sent < 30
    # The new owner's jobs were left alone: still running under its token. (A delivery
    # whose record lost the race with the takeover is the new owner's to record.)
    states = await job_states(engine)
    assert states.get("succeeded", 0) <= stolen_at
    assert states["running"] + states.get("succeeded", 0) == 30


async def test_a_poison_payload_fails_alone(
    settings: Settings, engine: AsyncEngine, mailhog: MailHog
) -> None:
    await queue_backlog(engine, 3)
    async with engine.begin() as connection:
        await connection.execute(
            text("INSERT INTO jobs (kind, payload) VALUES ('email.welcome', '{\"junk\": 1}')")
        )
    assert await drain_once(settings) == 4

    assert len(await mailhog.wait_for(3)) == 3
    [poison] = await rows(engine, "SELECT id, status, last_error FROM jobs WHERE payload ? 'junk'")
    assert poison["status"] == "failed" and poison["last_error"].startswith("malformed payload")
    [failed] = await rows(engine, "SELECT job_id FROM audit_log WHERE action = 'email.failed'")
    assert failed["job_id"] == poison["id"]
    assert await job_states(engine) == {"succeeded": 3, "failed": 1}


async def test_a_kind_without_a_handler_is_not_claimed(
    settings: Settings, engine: AsyncEngine
) -> None:
    # A newer release queued a kind this process does not know (a rolling deploy).
    async with engine.begin() as connection:
        await connection.execute(
            text("INSERT INTO jobs (kind, payload) VALUES ('email.from_the_future', '{}')")
        )
    assert await drain_once(settings) == 0
    [job] = await rows(engine, "SELECT status, attempts, last_error FROM jobs")
    assert job == {"status": "pending", "attempts": 0, "last_error": None}


class RefusingHandler:
    """Fails every job for good, and its give-up hook raises."""

    def __init__(self) -> None:
        self.runs = 0

    async def run(
        self, jobs: Sequence[ClaimedJob]
    ) -> AsyncGenerator[tuple[ClaimedJob, Outcome], None]:
        for job in jobs:
            self.runs += 1
            yield job, Failed(error="refused for good", permanent=True)

    async def on_give_up(self, session: AsyncSession, job: ClaimedJob, error: str) -> None:
        await session.execute(text("INSERT INTO audit_log (action) VALUES ('half written')"))
        raise RuntimeError("the give-up hook is broken")

    def ready(self) -> bool:
        return True


async def test_a_give_up_hook_that_raises_still_parks_the_job_once(
    engine: AsyncEngine, clean: None
) -> None:
    async with engine.begin() as connection:
        await connection.execute(text("INSERT INTO jobs (kind, payload) VALUES ('doomed', '{}')"))
    handler = RefusingHandler()
    runner = JobRunner(
        sessionmaker=async_sessionmaker(engine, expire_on_commit=False),
        handlers={"doomed": handler},
        config=RunnerConfig(lease_seconds=0.5),
    )
    assert await runner.drain() == 1
    await asyncio.sleep(0.7)  # past the lease: were the job still running, it would be retaken
    assert await runner.drain() == 0

    assert handler.runs == 1
    assert await rows(engine, "SELECT status, last_error FROM jobs") == [
        {"status": "failed", "last_error": "refused for good"}
    ]
    # The hook's own half-written row was rolled back with it; the parking was not.
    assert await rows(engine, "SELECT id FROM audit_log") == []


@dataclass(frozen=True)
class Marker:
    """Rows a failure carries (`Failed.rows`): one audit_log row per job."""

    job_id: int

    @classmethod
    async def write_all(cls, session: AsyncSession, rows: Sequence["Marker"]) -> None:
        for row in rows:
            await session.execute(
                text("INSERT INTO audit_log (action, job_id) VALUES ('marker', :id)"),
                {"id": row.job_id},
            )


class KnownRefusedHandler:
    """Fails each job for good without trying it, with rows and a callback; before the
    second job's outcome, another worker takes that job over."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self.recorded: list[int] = []

    async def run(
        self, jobs: Sequence[ClaimedJob]
    ) -> AsyncGenerator[tuple[ClaimedJob, Outcome], None]:
        for index, job in enumerate(sorted(jobs, key=lambda job: job.id)):
            if index == 1:
                async with self.engine.begin() as connection:
                    await connection.execute(
                        text("UPDATE jobs SET lease_token = gen_random_uuid() WHERE id = :id"),
                        {"id": job.id},
                    )
            outcome = Failed(
                error="known refused",
                permanent=True,
                rows=Marker(job.id),
                recorded=functools.partial(self.recorded.append, job.id),
                attempted=False,
            )
            yield job, outcome

    async def on_give_up(self, session: AsyncSession, job: ClaimedJob, error: str) -> None:
        pass

    def ready(self) -> bool:
        return True


async def test_a_failure_s_rows_and_callback_count_only_under_the_lease(
    engine: AsyncEngine, clean: None
) -> None:
    async with engine.begin() as connection:
        await connection.execute(
            text("INSERT INTO jobs (kind, payload) VALUES ('known', '{}'), ('known', '{}')")
        )
    handler = KnownRefusedHandler(engine)
    runner = JobRunner(
        sessionmaker=async_sessionmaker(engine, expire_on_commit=False),
        handlers={"known": handler},
        config=RunnerConfig(lease_seconds=30),
    )
    await runner.drain()

    ours, taken = await rows(engine, "SELECT id, status, attempts FROM jobs ORDER BY id")
    # Nothing was tried: parked with its attempt taken back.
    assert ours == {"id": ours["id"], "status": "failed", "attempts": 0}
    assert taken["status"] == "running"  # the other worker's now: nothing recorded for it
    assert await rows(engine, "SELECT job_id FROM audit_log WHERE action = 'marker'") == [
        {"job_id": ours["id"]}
    ]
    assert handler.recorded == [ours["id"]]
