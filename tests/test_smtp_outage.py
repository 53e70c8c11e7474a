"""SMTP down, hung, or gone for good: registrations still answer, mail arrives once it can."""

import asyncio
import os
import subprocess
import sys

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from backend.devstack.app_process import AppProcess, settings_env
from backend.devstack.smtp_proxy import SmtpProxy
from backend.settings import Settings
from tests.support.app_client import app_client
from tests.support.durability import (
    drain_once,
    job_states,
    queue_backlog,
    through_proxy,
    wait_until,
)
from tests.support.helpers import register_via_api, rows, user_json
from tests.support.mailhog import MailHog


async def test_smtp_down_registrations_succeed_and_mail_follows_when_back(
    settings: Settings, proxy: SmtpProxy, engine: AsyncEngine, mailhog: MailHog
) -> None:
    proxy.down()
    async with app_client(through_proxy(settings, proxy)) as client:
        users = [await register_via_api(client, f"patient{i}") for i in range(5)]
        pending = await rows(
            engine, "SELECT status, last_error FROM jobs WHERE kind = 'email.welcome'"
        )
        # Held, not failed: nothing burnt an attempt, and after the first one found the
        # relay down the others were not even tried.
        assert {j["status"] for j in pending} == {"pending"}
        assert "held: mail relay unavailable" in pending[0]["last_error"]
        assert all(j["last_error"] is None for j in pending[1:])
        assert (
            await rows(engine, "SELECT id FROM jobs WHERE kind = 'email.welcome' AND attempts > 0")
            == []
        )
        [relay] = await rows(engine, "SELECT state, last_error FROM relay_status")
        assert relay["state"] == "unavailable" and "Connect" in relay["last_error"]
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


async def test_a_relay_outage_longer_than_the_give_up_age_parks_with_the_real_error(
    settings: Settings, proxy: SmtpProxy, engine: AsyncEngine, mailhog: MailHog
) -> None:
    # Compressed: a give-up age of 3 s, the relay down for longer.
    proxy.down()
    app_settings = through_proxy(settings, proxy, job_max_age_hours=3 / 3600)
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
    assert job_after == {"attempts": job["attempts"], "status": "failed"}
    # The error says why it gave up and keeps what the relay last said.
    assert job["last_error"].startswith("gave up after 0.000833333 hours in the queue; last")
    assert "mail relay unavailable" in job["last_error"] and "Connect" in job["last_error"]
    [failed] = await rows(
        engine, "SELECT user_id, job_id, details FROM audit_log WHERE action = 'email.failed'"
    )
    assert str(failed["user_id"]) == user["id"] and failed["job_id"] == job["id"]
    assert failed["details"]["error"] == job["last_error"]
    assert await rows(engine, "SELECT id FROM audit_log WHERE action = 'email.sent'") == []

    # Visible and recoverable by a person: the CLI shows the relay and the job, and retries.
    env = {**os.environ, **settings_env(app_settings)}
    listing = _cli(env, "jobs")
    assert f"mail relay 127.0.0.1:{proxy.port}: unavailable since" in listing
    assert f"{job['id']:>6}  email.welcome  failed" in listing
    assert "failed: 1" in listing
    retried = _cli(env, "jobs", "retry", "--status", "failed", "--kind", "email.welcome")
    assert f"1 job(s) pending again ({job['id']})" in retried
    proxy.up()
    async with app_client(through_proxy(settings, proxy)):
        await wait_until(
            engine, "SELECT id FROM audit_log WHERE action = 'email.sent'", lambda f: len(f) == 1
        )
    assert len(await mailhog.wait_for(1)) == 1
    audit = _cli(env, "audit")
    assert "email.failed" in audit and "job.retried" in audit


def _cli(env: dict[str, str], *args: str) -> str:
    result = subprocess.run(
        [sys.executable, "-m", "backend", *args], env=env, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


@pytest.mark.parametrize(("mail_batch_size", "lanes"), [(1, 1), (10, 1), (10, 4)])
async def test_a_backlog_is_sent_over_one_reused_connection_per_lane(
    settings: Settings,
    proxy: SmtpProxy,
    engine: AsyncEngine,
    mailhog: MailHog,
    mail_batch_size: int,
    lanes: int,
) -> None:
    backlog = 40
    await queue_backlog(engine, backlog)
    assert (
        await drain_once(
            through_proxy(
                settings,
                proxy,
                mail_batch_size=mail_batch_size,
                job_batch_size=10,
                job_concurrency=lanes,
            )
        )
        == backlog
    )

    assert len(await mailhog.wait_for(backlog)) == backlog
    # Batches hand their connection to the next batch: one handshake per lane, not per batch.
    assert 1 <= proxy.connections <= lanes
