"""A relay that is down for a long time: nothing is given up, nothing burns attempts, and
everything held is delivered within seconds of the relay's return."""

import asyncio
import time
from datetime import datetime

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from backend.context import AppContext
from backend.devstack.app_process import AppProcess
from backend.devstack.smtp_proxy import SmtpProxy
from backend.settings import Settings
from tests.support.durability import job_states, queue_backlog, through_proxy, until_succeeded
from tests.support.helpers import rows, user_json
from tests.support.mailhog import Delivered, MailHog

OUTAGE_SECONDS = 90


def arrived_at(message: Delivered) -> float:
    """When the SMTP server took the message, by its own clock (MailHog's `Created`)."""
    created = message.item["Created"]
    # A real MailHog writes nanoseconds; Python reads at most microseconds.
    head, dot, tail = created.partition(".")
    if dot:
        digits = "".join(c for c in tail if c.isdigit())
        created = f"{head}.{digits[:6]}{tail[len(digits) :]}"
    return datetime.fromisoformat(created).timestamp()


@pytest.mark.slow
@pytest.mark.timeout(OUTAGE_SECONDS + 120)
async def test_after_a_90s_outage_every_email_arrives_within_5s_of_the_return(
    settings: Settings, proxy: SmtpProxy, engine: AsyncEngine, mailhog: MailHog
) -> None:
    # The default settings for everything that decides how fast a return is noticed.
    defaults = Settings(_env_file=None, environment="development")
    app_settings = through_proxy(
        settings,
        proxy,
        job_poll_seconds=defaults.job_poll_seconds,
        mail_relay_probe_seconds=defaults.mail_relay_probe_seconds,
        job_retry_base_seconds=defaults.job_retry_base_seconds,
        job_retry_cap_seconds=defaults.job_retry_cap_seconds,
        mail_timeout_seconds=defaults.mail_timeout_seconds,
    )
    proxy.down()
    with AppProcess(app_settings) as app:
        async with httpx.AsyncClient(base_url=app.url, timeout=10) as client:
            for i in range(12):
                response = await client.post("/api/register", json=user_json(f"waiting{i}"))
                assert response.status_code == 201
        await asyncio.sleep(OUTAGE_SECONDS)
        held = await rows(engine, "SELECT status, attempts FROM jobs WHERE kind = 'email.welcome'")
        assert held == [{"status": "pending", "attempts": 0}] * 12  # held, nothing burnt

        back_at = time.time()
        proxy.up()
        mails = await mailhog.wait_for(12, within=30)
        await until_succeeded(engine, 24)
        assert "is available again after" in app.log()

    assert len(mails) == 12
    delay = max(arrived_at(m) for m in mails) - back_at
    print(f"\nlast email arrived {delay:.2f}s after the relay came back")
    assert delay <= 5.0
    assert await job_states(engine) == {"succeeded": 24}
    assert await rows(engine, "SELECT id FROM audit_log WHERE action = 'email.failed'") == []


async def test_an_outage_longer_than_the_old_retry_budget_parks_nothing(
    settings: Settings, proxy: SmtpProxy, engine: AsyncEngine, mailhog: MailHog
) -> None:
    # Compressed: backoff that would have used up 15 attempts in about two seconds, an
    # outage three times that long. Relay failures are not the messages' failures.
    await queue_backlog(engine, 20)
    proxy.down()
    context = AppContext.build(
        through_proxy(
            settings,
            proxy,
            job_retry_base_seconds=0.05,
            job_retry_cap_seconds=0.1,
            mail_relay_probe_seconds=0.2,
        )
    )
    try:
        context.runner.start()
        await asyncio.sleep(6)
        assert await job_states(engine) == {"pending": 20}
        assert await rows(engine, "SELECT id FROM jobs WHERE attempts > 0") == []
        proxy.up()
        await until_succeeded(engine, 20)
    finally:
        await context.close()
    assert len(await mailhog.wait_for(20)) == 20
    assert await rows(engine, "SELECT id FROM audit_log WHERE action = 'email.failed'") == []
