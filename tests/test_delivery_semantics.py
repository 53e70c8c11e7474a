"""What happens to an email at the edges: an outcome that could not be recorded, a job
that fails beside others that don't."""

import asyncio

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker

from backend.context import AppContext
from backend.jobs import outbox
from backend.settings import Settings
from tests.durability import job_states, queue_registrations, refusing_inserts
from tests.helpers import rows
from tests.support.mailhog import MailHog


async def test_a_resend_after_a_lost_outcome_has_the_same_message_id_and_one_audit_row(
    settings: Settings, engine: AsyncEngine, mailhog: MailHog
) -> None:
    # The documented duplicate window: SMTP accepted the email, recording that failed
    # (here the database refuses the audit insert; in life, the process died).
    await queue_registrations(engine, settings, 1)
    context = AppContext.build(settings.model_copy(update={"job_lease_seconds": 1.0}))
    try:
        async with refusing_inserts(engine, "audit_log"):
            await context.runner.drain()
            [first] = await mailhog.wait_for(1)
            [job] = await rows(engine, "SELECT status FROM jobs WHERE kind = 'email.welcome'")
            assert job["status"] == "running"  # nothing recorded: the lease is all that's left

        await asyncio.sleep(1.1)  # the lease runs out, as it would for a dead worker
        await context.runner.drain()
    finally:
        await context.engine.dispose()

    mails = await mailhog.wait_for(2)
    assert len(mails) == 2
    assert mails[0].message_ids == mails[1].message_ids == first.message_ids
    sent = await rows(engine, "SELECT details FROM audit_log WHERE action = 'email.sent'")
    assert [s["details"]["message_id"] for s in sent] == first.message_ids
    assert [s["details"]["attempt"] for s in sent] == [2]
    assert await job_states(engine) == {"succeeded": 2}


async def test_one_failing_email_does_not_stop_the_others_in_its_batch(
    settings: Settings, engine: AsyncEngine, mailhog: MailHog
) -> None:
    await queue_registrations(engine, settings, 5)
    async with engine.begin() as connection:
        # The middle user is gone before its email is sent: a permanent failure.
        await connection.execute(text("DELETE FROM users WHERE username = 'user0002'"))
    context = AppContext.build(settings)
    try:
        assert await context.runner.drain() == 10
    finally:
        await context.engine.dispose()

    mails = await mailhog.wait_for(4)
    assert sorted(m.to[0] for m in mails) == [f"user{i:04d}@example.com" for i in (0, 1, 3, 4)]
    failed = await rows(engine, "SELECT attempts, last_error FROM jobs WHERE status = 'failed'")
    assert failed == [{"attempts": 1, "last_error": "the user no longer exists"}]
    assert await job_states(engine) == {"succeeded": 9, "failed": 1}


async def test_an_email_whose_worker_dies_on_every_attempt_is_parked_with_email_failed(
    settings: Settings, engine: AsyncEngine, mailhog: MailHog
) -> None:
    await queue_registrations(engine, settings.model_copy(update={"job_max_attempts": 2}), 1)
    for _ in range(2):  # two workers in a row take the jobs and die holding them
        async with async_sessionmaker(engine)() as session:
            assert len(await outbox.claim(session, lease_seconds=0.2, limit=10)) == 2
        await asyncio.sleep(0.3)
    context = AppContext.build(settings)
    try:
        assert await context.runner.run_due() == 2
    finally:
        await context.engine.dispose()

    assert await mailhog.messages() == []  # parked, not attempted a third time
    jobs = await rows(engine, "SELECT status, attempts, last_error FROM jobs")
    assert (
        jobs
        == [{"status": "failed", "attempts": 3, "last_error": "lease expired on the last attempt"}]
        * 2
    )
    [failed] = await rows(engine, "SELECT details FROM audit_log WHERE action = 'email.failed'")
    assert failed["details"]["error"] == "lease expired on the last attempt"
    assert failed["details"]["attempts"] == 3
