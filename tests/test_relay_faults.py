"""Each SMTP failure, at the stage where it happens, and what becomes of the email.

The faults are real SMTP answers from the mail server, set through its Jim API: the
relay's problems hold the email (no attempt burnt, nothing parked) until the relay is
back; a message's own 5xx parks that message alone; a 4xx retries it."""

import contextlib
import logging
from collections.abc import AsyncIterator

import pytest
from pydantic import SecretStr
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from backend.context import AppContext
from backend.devstack.smtp_proxy import SmtpProxy
from backend.settings import Settings
from tests.support.durability import (
    drain_once,
    duplicates,
    job_states,
    queue_backlog,
    through_proxy,
    until_succeeded,
    wait_until,
)
from tests.support.helpers import rows
from tests.support.jim import JimAPI
from tests.support.mailhog import MailHog


def fault(stage: str, reply: str = "", **rule: object) -> dict[str, object]:
    """One of the inbox's `Faults` rules: at `stage`, answer `reply` (or hang, disconnect)."""
    return {"Stage": stage, **({"Reply": reply} if reply else {}), **rule}


@contextlib.asynccontextmanager
async def running(settings: Settings, **overrides: object) -> AsyncIterator[AppContext]:
    """The app's background work, as it runs in a process: the poller, the relay probe."""
    context = AppContext.build(settings.model_copy(update=overrides))
    context.runner.start()
    try:
        yield context
    finally:
        await context.close()


def _rule_id(rule: dict[str, object]) -> str:
    return f"{rule['Stage']}-{str(rule.get('Reply') or rule.get('Action'))[:3]}"


async def until_relay_is(engine: AsyncEngine, state: str) -> None:
    await wait_until(engine, "SELECT state FROM relay_status", lambda f: f == [{"state": state}])


async def relay_state(engine: AsyncEngine) -> str | None:
    found = await rows(engine, "SELECT state FROM relay_status")
    return str(found[0]["state"]) if found else None


@pytest.mark.parametrize(
    ("rule", "state"),
    [
        (fault("connect", "421 4.3.2 Service shutting down"), "unavailable"),
        (fault("connect", Action="disconnect"), "unavailable"),
        (fault("connect", "554 5.3.2 No SMTP service here"), "refusing"),
        (fault("helo", "554 5.7.1 Client host rejected"), "refusing"),
        (fault("mail", "530 5.7.0 Authentication required"), "refusing"),
        (fault("mail", "550 5.7.1 Sender address rejected"), "refusing"),
        (fault("mail", "553 5.7.1 Sender not owned by user"), "refusing"),
        (fault("data", "554 5.7.0 Sending paused for this account"), "refusing"),
        (fault("data", "421 4.4.2 Connection dropped"), "unavailable"),
    ],
    ids=lambda value: (
        value
        if isinstance(value, str)
        else f"{value['Stage']}-{value.get('Reply', value.get('Action'))[:3]}"
    ),
)
async def test_the_relays_problem_holds_the_email_until_it_is_back(
    settings: Settings,
    engine: AsyncEngine,
    mailhog: MailHog,
    jim: JimAPI,
    rule: dict[str, object],
    state: str,
) -> None:
    await jim.faults(rule)
    await queue_backlog(engine, 3)
    async with running(settings):
        await wait_until(
            engine, "SELECT state FROM relay_status", lambda f: f == [{"state": state}]
        )
        # Held: pending, due, no attempt counted, not parked, however long it lasts.
        await wait_until(
            engine,
            "SELECT status, attempts FROM jobs",
            lambda f: f == [{"status": "pending", "attempts": 0}] * 3,
        )
        assert await mailhog.messages() == []

        await jim.off()  # the relay is back
        await until_succeeded(engine, 3)
    assert await relay_state(engine) == "available"
    mails = await mailhog.wait_for(3)
    assert len(mails) == 3 and duplicates(mails) == 0
    assert await rows(engine, "SELECT id FROM audit_log WHERE action = 'email.failed'") == []


@pytest.mark.parametrize(
    "rule",
    [
        # Quoting the recipient, as Postfix does.
        fault("rcpt", "550 5.1.1 <backlog2@example.com>: No such user", Match="backlog2@"),
        fault("rcpt", "553 5.1.3 Bad destination mailbox address syntax", Match="backlog2@"),
        fault("data", "552 5.3.4 Message size exceeds fixed limit", Match="backlog2@"),
    ],
    ids=lambda rule: _rule_id(rule),
)
async def test_a_message_refused_for_itself_is_parked_alone(
    settings: Settings,
    engine: AsyncEngine,
    mailhog: MailHog,
    jim: JimAPI,
    rule: dict[str, object],
    caplog: pytest.LogCaptureFixture,
) -> None:
    await jim.faults(rule)
    await queue_backlog(engine, 3)
    with caplog.at_level(logging.INFO, logger="backend"):
        assert await drain_once(settings) == 3

    mails = await mailhog.wait_for(2)
    assert sorted(m.to[0] for m in mails) == ["backlog1@example.com", "backlog3@example.com"]
    [parked] = await rows(
        engine, "SELECT id, attempts, last_error FROM jobs WHERE status = 'failed'"
    )
    assert parked["attempts"] == 1 and str(rule["Reply"])[:3] in parked["last_error"]
    # The failure is described without naming the person, wherever it is written.
    assert "backlog2" not in parked["last_error"] and "backlog2" not in caplog.text
    assert "failed for good" in caplog.text
    [failed] = await rows(
        engine, "SELECT job_id, details FROM audit_log WHERE action = 'email.failed'"
    )
    assert failed["job_id"] == parked["id"] and failed["details"]["error"] == parked["last_error"]
    assert await relay_state(engine) is None  # the relay never faltered


async def test_a_4xx_for_one_message_retries_that_message_with_backoff(
    settings: Settings, engine: AsyncEngine, mailhog: MailHog, jim: JimAPI
) -> None:
    await jim.faults(fault("rcpt", "450 4.2.1 Mailbox busy", Match="backlog2@", Times=2))
    await queue_backlog(engine, 3)
    async with running(settings):
        await until_succeeded(engine, 3)

    attempts = await rows(
        engine, "SELECT payload->>'message_id' AS id, attempts FROM jobs ORDER BY 1"
    )
    assert [a["attempts"] for a in attempts] == [1, 3, 1]
    assert len(await mailhog.wait_for(3)) == 3
    assert await relay_state(engine) is None


@pytest.mark.parametrize(
    "rule",
    [
        fault("mail", "421 4.7.0 Try again later", Times=1),
        fault("rcpt", "451 4.7.1 Too many messages, slow down", Times=1),
    ],
    ids=["421-try-later", "451-too-many"],
)
async def test_a_relay_asking_to_slow_down_pauses_the_queue_not_the_message(
    settings: Settings, engine: AsyncEngine, mailhog: MailHog, jim: JimAPI, rule: dict[str, object]
) -> None:
    await jim.faults(rule)
    await queue_backlog(engine, 3)
    async with running(settings):
        await wait_until(
            engine, "SELECT state FROM relay_status", lambda f: f == [{"state": "throttled"}]
        )
        await until_succeeded(engine, 3, within=30)
    assert await rows(engine, "SELECT id FROM jobs WHERE attempts > 1") == []
    assert len(await mailhog.wait_for(3)) == 3


async def test_a_link_dropped_right_after_250_loses_and_repeats_nothing(
    settings: Settings, engine: AsyncEngine, mailhog: MailHog, jim: JimAPI
) -> None:
    await jim.faults(fault("after_data", Action="disconnect", Times=2))
    await queue_backlog(engine, 6)
    assert await drain_once(settings) == 6
    mails = await mailhog.wait_for(6)
    assert len(mails) == 6 and duplicates(mails) == 0
    assert await job_states(engine) == {"succeeded": 6}
    assert await relay_state(engine) is None  # one reconnect, not an outage


async def test_a_hung_relay_times_out_into_held_and_drains_when_it_answers(
    settings: Settings, engine: AsyncEngine, mailhog: MailHog, jim: JimAPI
) -> None:
    await jim.faults(fault("mail", Action="hang"))
    await queue_backlog(engine, 3)
    async with running(settings, mail_timeout_seconds=1):
        await wait_until(
            engine, "SELECT state FROM relay_status", lambda f: f == [{"state": "unavailable"}]
        )
        await wait_until(
            engine, "SELECT status FROM jobs", lambda f: f == [{"status": "pending"}] * 3
        )
        await jim.off()
        await until_succeeded(engine, 3)
    assert len(await mailhog.wait_for(3)) == 3


async def test_an_unexpected_error_fails_that_message_alone_not_its_connection(
    settings: Settings, proxy: SmtpProxy, engine: AsyncEngine, mailhog: MailHog
) -> None:
    await queue_backlog(engine, 3)
    async with engine.begin() as connection:
        # An address no message can be built for (it slipped past validation somehow).
        await connection.execute(
            text("UPDATE users SET email = 'x\nBcc: all@example.com' WHERE username = 'backlog2'")
        )
    # One lane, so that the three emails share one batch and one connection. A retry far
    # off: on a busy machine the rest of the batch can outlast the suite's 0.1-0.2 s backoff,
    # and the drain would then run the failed job a second time.
    lane = through_proxy(
        settings, proxy, job_concurrency=1, job_retry_base_seconds=60.0, job_retry_cap_seconds=60.0
    )
    assert await drain_once(lane) == 3

    mails = await mailhog.wait_for(2)
    assert sorted(m.to[0] for m in mails) == ["backlog1@example.com", "backlog3@example.com"]
    assert proxy.connections == 1  # the batch went on over the same connection
    [odd] = await rows(engine, "SELECT status, attempts FROM jobs WHERE status <> 'succeeded'")
    assert odd["status"] == "pending" and odd["attempts"] == 1  # retried with backoff
    assert await relay_state(engine) is None


async def test_a_refused_login_holds_the_email_until_the_relay_takes_it(
    settings: Settings, engine: AsyncEngine, mailhog: MailHog, jim: JimAPI
) -> None:
    await jim.faults(fault("auth", "535 5.7.8 Authentication credentials invalid"))
    await queue_backlog(engine, 2)
    async with running(settings, mail_username="app", mail_password=SecretStr("secret")):
        await until_relay_is(engine, "refusing")
        [relay] = await rows(engine, "SELECT last_error FROM relay_status")
        assert "535" in relay["last_error"]
        # Held, once each claimed email is handed back: no attempt counted, none parked.
        await wait_until(
            engine,
            "SELECT status, attempts FROM jobs",
            lambda f: f == [{"status": "pending", "attempts": 0}] * 2,
        )
        await jim.off()
        await until_succeeded(engine, 2)
    assert len(await mailhog.wait_for(2)) == 2
    assert await rows(engine, "SELECT id FROM audit_log WHERE action = 'email.failed'") == []
