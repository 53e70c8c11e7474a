"""What happens to an email at the edges: an outcome that could not be recorded, a job
that fails beside others that don't."""

import asyncio

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker

from backend.audit.service import record_job_actions
from backend.context import AppContext
from backend.jobs import admin
from backend.settings import Settings
from tests.support.durability import drain_once, job_states, queue_registrations, refusing_inserts
from tests.support.helpers import rows
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
        await context.close()

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
    assert await drain_once(settings) == 10

    mails = await mailhog.wait_for(4)
    assert sorted(m.to[0] for m in mails) == [f"user{i:04d}@example.com" for i in (0, 1, 3, 4)]
    failed = await rows(engine, "SELECT attempts, last_error FROM jobs WHERE status = 'failed'")
    assert failed == [{"attempts": 1, "last_error": "the user no longer exists"}]
    assert await job_states(engine) == {"succeeded": 9, "failed": 1}


async def test_an_email_too_old_is_given_up_with_its_real_error_and_again_after_a_retry(
    settings: Settings, engine: AsyncEngine, mailhog: MailHog
) -> None:
    await queue_registrations(engine, settings, 1)
    async with engine.begin() as connection:
        # It has been failing for six days; the default give-up age is five.
        await connection.execute(
            text(
                "UPDATE jobs SET created_at = now() - interval '6 days', attempts = 40, "
                "last_error = '451 4.3.0 mailbox busy' WHERE kind = 'email.welcome'"
            )
        )
    context = AppContext.build(settings)
    try:
        await context.runner.drain()
        assert await mailhog.messages() == []  # given up, not attempted once more
        [job] = await rows(
            engine, "SELECT id, status, last_error FROM jobs WHERE kind = 'email.welcome'"
        )
        assert job["status"] == "failed"
        assert job["last_error"] == (
            "gave up after 120 hours in the queue; last error: 451 4.3.0 mailbox busy"
        )

        # An operator retries it (fresh age); it fails again for good (its user is gone):
        # the second give-up writes its own row.
        async with async_sessionmaker(engine)() as session, session.begin():
            await session.execute(text("DELETE FROM users"))
            retried = await admin.retry(
                session, by="test", record=record_job_actions, job_id=job["id"]
            )
            assert [j.id for j in retried] == [job["id"]]
        await context.runner.drain()
    finally:
        await context.close()

    failed = await rows(
        engine, "SELECT job_id, details FROM audit_log WHERE action = 'email.failed' ORDER BY id"
    )
    assert [f["job_id"] for f in failed] == [job["id"]] * 2
    assert [f["details"]["error"] for f in failed] == [
        job["last_error"],
        "the user no longer exists",
    ]
