"""A flaky relay, as MailHog's chaos monkey makes one: connections refused and dropped,
the sender rejected now and then. Every email arrives; nothing is given up."""

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from backend.devstack.app_process import AppProcess
from backend.settings import Settings
from tests.support.durability import duplicates, job_states, queue_backlog, until_succeeded
from tests.support.helpers import rows
from tests.support.jim import jim_api
from tests.support.mailhog import MailEndpoints, MailHog

EMAILS = 30


@pytest.mark.slow
@pytest.mark.timeout(150)
@pytest.mark.parametrize("fault_rate", [0.1, 0.3])
async def test_every_email_arrives_through_a_flaky_relay(
    settings: Settings,
    mail_endpoints: MailEndpoints,
    engine: AsyncEngine,
    mailhog: MailHog,
    fault_rate: float,
) -> None:
    await queue_backlog(engine, EMAILS)
    async with jim_api(mail_endpoints) as jim:
        await jim.on(
            AcceptChance=1 - fault_rate,
            DisconnectChance=fault_rate / 5,  # per command: about a third of messages
            RejectSenderChance=fault_rate,
            # (no refused recipients: those are rightly given up)
        )
        with AppProcess(settings.model_copy(update={"job_batch_size": 10})):
            await until_succeeded(engine, EMAILS, within=120)
    mails = await mailhog.messages()
    assert len({m.message_ids[0] for m in mails}) == EMAILS
    print(f"\nfault rate {fault_rate}: {EMAILS} delivered, {duplicates(mails)} duplicate(s)")
    assert await job_states(engine) == {"succeeded": EMAILS}
    assert await rows(engine, "SELECT id FROM audit_log WHERE action = 'email.failed'") == []
