"""Real processes, real signals: nothing is lost to SIGKILL, nothing is faked by SIGTERM."""

from sqlalchemy.ext.asyncio import AsyncEngine

from backend.devstack.app_process import AppProcess
from backend.devstack.smtp_proxy import SmtpProxy
from backend.settings import Settings
from tests.support.durability import (
    job_states,
    register_while_smtp_hangs,
    through_proxy,
    wait_until,
)
from tests.support.helpers import rows
from tests.support.mailhog import MailHog


async def test_sigkill_between_response_and_delivery_loses_nothing(
    settings: Settings, proxy: SmtpProxy, engine: AsyncEngine, mailhog: MailHog
) -> None:
    # A short lease so the takeover happens within the test; SMTP hangs meanwhile.
    app_settings = through_proxy(settings, proxy, job_lease_seconds=2, mail_timeout_seconds=30)
    proxy.pause()
    with AppProcess(app_settings) as first:
        await register_while_smtp_hangs(first.url, engine, "survivor")
        first.kill()
    assert await mailhog.messages() == []
    proxy.resume()

    with AppProcess(app_settings):
        await wait_until(
            engine,
            "SELECT status FROM jobs",
            lambda found: [j["status"] for j in found] == ["succeeded", "succeeded"],
        )

    [mail] = await mailhog.wait_for(1)
    assert mail.to == ["survivor@example.com"]
    audit = await rows(engine, "SELECT action FROM audit_log ORDER BY action")
    assert [a["action"] for a in audit] == ["email.sent", "user.registered"]
    [job] = await rows(engine, "SELECT attempts FROM jobs WHERE kind = 'email.welcome'")
    assert job["attempts"] == 2  # the killed attempt, then the one that took over


async def test_sigterm_interrupts_and_releases_without_marking_anything_done(
    settings: Settings, proxy: SmtpProxy, engine: AsyncEngine, mailhog: MailHog
) -> None:
    app_settings = through_proxy(
        settings, proxy, job_shutdown_grace_seconds=1, mail_timeout_seconds=30
    )
    proxy.pause()
    with AppProcess(app_settings) as app:
        await register_while_smtp_hangs(app.url, engine, "patient")
        assert app.terminate(within=20) in (0, -15)
        assert "interrupted 1 running job batch" in app.log()

    # Handed back for the next start: pending, due now, the interrupted attempt not counted.
    [job] = await rows(
        engine,
        "SELECT status, attempts, lease_token, run_after <= now() AS due FROM jobs "
        "WHERE kind = 'email.welcome'",
    )
    assert job == {"status": "pending", "attempts": 0, "lease_token": None, "due": True}
    assert await rows(engine, "SELECT id FROM audit_log WHERE action = 'email.sent'") == []
    assert await mailhog.messages() == []

    proxy.resume()
    with AppProcess(app_settings):
        await wait_until(
            engine, "SELECT id FROM audit_log WHERE action = 'email.sent'", lambda f: len(f) == 1
        )
    assert len(await mailhog.wait_for(1)) == 1
    assert await job_states(engine) == {"succeeded": 2}
