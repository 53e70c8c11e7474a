"""The relay's state shared by the processes (`relay_status`): one process's discovery of
an outage holds the others without an attempt of their own, they take turns to probe,
and one probe finding the relay back resumes them all."""

import asyncio
import time

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker

from backend.devstack.app_process import AppProcess
from backend.devstack.smtp_proxy import SmtpProxy
from backend.mail import relay_shared
from backend.settings import Settings
from tests.support.durability import queue_backlog, through_proxy, until_succeeded
from tests.support.mailhog import MailHog
from tests.test_metrics import Samples, scrape, value

PROBE_SECONDS = 1.0
LEARNED = "is unavailable (found by another process)"


def probes(samples: Samples) -> float:
    return value(samples, "smtp_failures_total", fault="relay_unavailable", operation="probe") or 0


def sends(samples: Samples) -> float:
    return value(samples, "smtp_failures_total", fault="relay_unavailable", operation="send") or 0


async def until_logged(apps: list[AppProcess], line: str, *, within: float = 30) -> None:
    deadline = time.monotonic() + within
    while not all(line in app.log() for app in apps):
        assert time.monotonic() < deadline, f"not every process logged {line!r}"
        await asyncio.sleep(0.2)


@pytest.mark.timeout(180)
async def test_one_process_finds_the_relay_down_and_the_others_hold_and_take_turns(
    settings: Settings, proxy: SmtpProxy, engine: AsyncEngine, mailhog: MailHog
) -> None:
    # The runners poll seldom: only the first process, started after the email is queued
    # (its first claim at once), tries to send it.
    app_settings = through_proxy(
        settings, proxy, mail_relay_probe_seconds=PROBE_SECONDS, job_poll_seconds=600
    )
    others = [AppProcess(app_settings) for _ in range(2)]
    first = AppProcess(app_settings)
    try:
        await asyncio.gather(*(asyncio.to_thread(app.start) for app in others))
        proxy.down()
        await queue_backlog(engine, 1)
        await asyncio.to_thread(first.start)
        await until_logged([first], "is unavailable (found by this process)")
        # The others learn it from the shared row, with no attempt of their own.
        await until_logged(others, LEARNED)
        for app in others:
            samples = await scrape(app.url)
            assert sends(samples) == 0
            assert value(samples, "relay_state", state="unavailable") == 1

        # Together they probe about once a PROBE_SECONDS, not once each (a slow machine
        # only probes less); three on their own timers would probe three times as often.
        apps = [first, *others]
        started = time.monotonic()
        before = sum([probes(await scrape(app.url)) for app in apps])
        await asyncio.sleep(5)
        during = sum([probes(await scrape(app.url)) for app in apps]) - before
        elapsed = time.monotonic() - started
        assert 1 <= during <= elapsed / PROBE_SECONDS + 2, f"{during} probes in {elapsed:.1f} s"

        # One probe finds it back; the others resume on its word, and the email goes.
        proxy.up()
        await until_succeeded(engine, 1, within=60)
        assert len(await mailhog.wait_for(1)) == 1
        await until_logged(apps, "is available again")
        learned_back = [app for app in apps if "(found by another process)" in app.log()]
        assert any(
            "is available again" in line and "found by another process" in line
            for app in learned_back
            for line in app.log().splitlines()
        )
    finally:
        for app in [first, *others]:
            app.stop()


async def test_of_two_processes_looking_at_once_one_takes_the_probe_turn(
    settings: Settings, engine: AsyncEngine
) -> None:
    sessions = async_sessionmaker(engine)
    async with engine.begin() as connection:
        await connection.execute(
            text(
                "INSERT INTO relay_status (relay, state, since, probed_at) "
                "VALUES ('turns:25', 'unavailable', now(), now() - interval '1 minute')"
            )
        )

    async def look() -> relay_shared.Seen | None:
        return await relay_shared.look(sessions, relay="turns:25", take_turn=True, every_seconds=30)

    seen = await asyncio.gather(*(look() for _ in range(4)))
    assert [s is not None and s.state for s in seen] == ["unavailable"] * 4
    assert sum(1 for s in seen if s is not None and s.my_turn) == 1
    # The turn stays taken for `every_seconds`.
    again = await look()
    assert again is not None and not again.my_turn
