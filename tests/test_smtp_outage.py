"""SMTP down, hung, or gone for good: registrations still answer, mail arrives once it can."""

import asyncio
import math
import os
import subprocess
import sys

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from backend.context import AppContext
from backend.settings import Settings
from tests.conftest import app_client
from tests.durability import job_states, queue_registrations, through_proxy, wait_until
from tests.helpers import register_via_api, rows, user_json
from tests.support.mailhog import MailHog
from tests.support.server import AppProcess, settings_env
from tests.support.smtp_proxy import SmtpProxy


async def test_smtp_down_registrations_succeed_and_mail_follows_when_back(
    settings: Settings, proxy: SmtpProxy, engine: AsyncEngine, mailhog: MailHog
) -> None:
    proxy.down()
    async with app_client(through_proxy(settings, proxy)) as client:
        users = [await register_via_api(client, f"patient{i}") for i in range(5)]
        pending = await rows(
            engine, "SELECT status, last_error FROM jobs WHERE kind = 'email.welcome'"
        )
        assert {j["status"] for j in pending} == {"pending"}
        assert all("Connect" in j["last_error"] or "refused" in j["last_error"] for j in pending)
        assert await mailhog.messages() == []

        proxy.up()
        await wait_until(
            engine, "SELECT id FROM audit_log WHERE action = 'email.sent'", lambda f: len(f) == 5
        )

    mails = await mailhog.wait_for(5)
    assert sorted(m.to[0] for m in mails) == sorted(u["email"] for u in users)
    assert await job_states(engine) == {"succeeded": 10}


async def test_a_hung_smtp_server_does_not_hold_up_responses(
    settings: Settings, proxy: SmtpProxy, engine: AsyncEngine
) -> None:
    # SMTP accepts connections and then says nothing for 30 s. If a response waited for
    # the email, the 5 s client timeout below would fire; each one gets its 201 instead,
    # over one keep-alive connection.
    proxy.pause()
    with AppProcess(through_proxy(settings, proxy, mail_timeout_seconds=30)) as app:
        async with httpx.AsyncClient(base_url=app.url, timeout=5) as client:
            for i in range(3):
                response = await client.post("/api/register", json=user_json(f"quick{i}"))
                assert response.status_code == 201
        running = await rows(engine, "SELECT id FROM jobs WHERE kind = 'email.welcome'")
        assert len(running) == 3
        assert await rows(engine, "SELECT id FROM audit_log WHERE action = 'email.sent'") == []
        proxy.resume()


async def test_after_the_last_attempt_the_job_is_parked_with_its_error(
    settings: Settings, proxy: SmtpProxy, engine: AsyncEngine, mailhog: MailHog
) -> None:
    proxy.down()
    app_settings = through_proxy(settings, proxy, job_max_attempts=3)
    async with app_client(app_settings) as client:
        user = await register_via_api(client, "unlucky")
        [job] = await wait_until(
            engine,
            "SELECT id, status, attempts, last_error FROM jobs WHERE kind = 'email.welcome'",
            lambda found: found[0]["status"] == "failed",
        )
        await asyncio.sleep(1.0)  # a few more poll cycles: a parked job is never retried

    [job_after] = await rows(
        engine, "SELECT attempts, status FROM jobs WHERE id = :id", id=job["id"]
    )
    assert job_after == {"attempts": 3, "status": "failed"}
    assert job["last_error"]
    [failed] = await rows(
        engine, "SELECT user_id, job_id, details FROM audit_log WHERE action = 'email.failed'"
    )
    assert str(failed["user_id"]) == user["id"] and failed["job_id"] == job["id"]
    assert failed["details"]["attempts"] == 3 and failed["details"]["error"] == job["last_error"]
    assert await rows(engine, "SELECT id FROM audit_log WHERE action = 'email.sent'") == []

    # Visible and recoverable by a person: the CLI lists it and retries it.
    env = {**os.environ, **settings_env(app_settings)}
    listing = _cli(env, "jobs")
    assert f"{job['id']:>6}  email.welcome  failed" in listing and "3/3" in listing
    assert "failed: 1" in listing
    assert "is pending again" in _cli(env, "jobs", "retry", str(job["id"]))
    proxy.up()
    async with app_client(app_settings):
        await wait_until(
            engine, "SELECT id FROM audit_log WHERE action = 'email.sent'", lambda f: len(f) == 1
        )
    assert len(await mailhog.wait_for(1)) == 1
    assert "email.failed" in _cli(env, "audit")


def _cli(env: dict[str, str], *args: str) -> str:
    result = subprocess.run(
        [sys.executable, "-m", "backend", *args], env=env, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


@pytest.mark.parametrize("mail_batch_size", [1, 10])
async def test_a_backlog_is_sent_over_few_connections(
    settings: Settings,
    proxy: SmtpProxy,
    engine: AsyncEngine,
    mailhog: MailHog,
    mail_batch_size: int,
) -> None:
    backlog = 30
    await queue_registrations(engine, settings, backlog)
    context = AppContext.build(
        # One lane: the count below is exact only when one batch holds the whole backlog.
        through_proxy(
            settings,
            proxy,
            mail_batch_size=mail_batch_size,
            job_batch_size=100,
            job_concurrency=1,
        )
    )
    try:
        assert await context.runner.drain() == 2 * backlog
    finally:
        await context.engine.dispose()

    assert len(await mailhog.wait_for(backlog)) == backlog
    assert proxy.connections == math.ceil(backlog / mail_batch_size)
