"""Suppressed addresses: an address the relay refuses for good at RCPT TO gets one attempt,
then none, until an operator lifts it (the CLI or the operator page), audited. A refused
sender, a 4xx and a relay-wide refusal never suppress anyone.

The SMTP attempts are counted at the server: the mail goes through the counting proxy
(`backend/devstack/smtp_proxy.py`) with no connection kept between batches, so every
attempt is a connection, and whatever is not refused reaches the inbox. Jim's
`RejectRecipientChance` works on a real MailHog too; the `Faults` rules skip there.
"""

import asyncio
import os
import subprocess
import sys
from typing import Any

import httpx
from sqlalchemy.ext.asyncio import AsyncEngine

from backend.devstack.app_process import AppProcess, settings_env
from backend.devstack.smtp_proxy import SmtpProxy
from backend.mail.suppressions import SUPPRESSED_PREFIX
from backend.settings import Settings
from tests.support.durability import through_proxy, wait_until
from tests.support.helpers import execute, register_via_api, rows
from tests.support.jim import JimAPI
from tests.support.mailhog import MailHog
from tests.support.ops import form_fields
from tests.support.ops_client import audit_rows, operator, page
from tests.test_relay_faults import fault


async def cli(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    """`python -m backend ARGS` as an operator runs it, with only the database's settings."""
    env = {**os.environ, "DATABASE_URL": settings_env(settings)["DATABASE_URL"]}
    command = [sys.executable, "-m", "backend", *args]
    return await asyncio.to_thread(subprocess.run, command, env=env, capture_output=True, text=True)


async def job_of(engine: AsyncEngine, kind: str, *, status: str) -> dict[str, Any]:
    """The one job of `kind`, once it is in `status`."""
    [job] = await wait_until(
        engine,
        "SELECT id, status, attempts, last_error FROM jobs WHERE kind = :kind",
        lambda found: len(found) == 1 and found[0]["status"] == status,
        kind=kind,
    )
    return job


async def resend(client: httpx.AsyncClient, address: str) -> None:
    answer = await client.post("/api/verification/resend", json={"email": address})
    assert answer.status_code == 202, answer.text


def mail_settings(settings: Settings, proxy: SmtpProxy) -> Settings:
    # No connection kept open between batches: each attempt is a connection at the proxy.
    # A budget that the test's three emails to one address stay under.
    return through_proxy(
        settings, proxy, mail_connection_idle_seconds=0, mail_per_address_limit="20/hour"
    )


async def test_a_refused_recipient_gets_one_attempt_then_none_until_lifted(
    settings: Settings, engine: AsyncEngine, mailhog: MailHog, jim: JimAPI, proxy: SmtpProxy
) -> None:
    await jim.on(RejectRecipientChance=1)  # MailHog's "550 Invalid recipient <ada@…>"
    with AppProcess(mail_settings(settings, proxy)) as app:
        async with httpx.AsyncClient(base_url=app.url, timeout=30) as client:
            user = await register_via_api(client, "ada")
            welcome = await job_of(engine, "email.welcome", status="failed")
            assert welcome["attempts"] == 1 and "550" in welcome["last_error"]
            assert proxy.connections >= 1  # the one attempt reached the server

            listed = await cli(settings, "suppressions", "list")
            assert listed.returncode == 0, listed.stderr
            assert listed.stdout.startswith("1 suppressed address(es)")
            assert "ada@example.com" in listed.stdout and "550" in listed.stdout
            [entry] = await rows(engine, "SELECT * FROM email_suppressions")
            assert entry["address"] == "ada@example.com" and entry["job_id"] == welcome["id"]
            assert "ada@" not in entry["reason"] and "550" in entry["reason"]

            # The server takes everything again; the address stays suppressed.
            await jim.off()
            proxy.reset_count()
            await resend(client, "ada@example.com")
            resent = await job_of(engine, "email.verification", status="failed")
            assert resent["last_error"].startswith(SUPPRESSED_PREFIX)
            assert resent["last_error"].startswith("suppressed: ***@example.com: refused on ")
            assert resent["attempts"] == 0
            # None: no connection, nothing delivered.
            assert proxy.connections == 0
            assert await mailhog.to("ada@example.com") == []

            # A control: the same path for another address reaches the server.
            await register_via_api(client, "bob")
            await mailhog.wait_for(1)
            assert proxy.connections >= 1

            removed = await cli(settings, "suppressions", "remove", "ADA@example.com")
            assert removed.returncode == 0, removed.stderr
            assert removed.stdout.startswith("ada@example.com removed from the suppression list")
            again = await cli(settings, "suppressions", "remove", "ada@example.com")
            assert again.returncode == 1 and "is not on the suppression list" in again.stderr

            await execute(engine, "DELETE FROM jobs WHERE kind = 'email.verification'")
            await resend(client, "ada@example.com")
            await job_of(engine, "email.verification", status="succeeded")
    [delivered] = await mailhog.to("ada@example.com")
    assert "confirmation link" in delivered.subject
    assert await rows(engine, "SELECT * FROM email_suppressions") == []

    audit = await rows(engine, "SELECT action, user_id, job_id, details FROM audit_log ORDER BY id")
    by_action = {row["action"]: row for row in audit}
    added = by_action["suppression.added"]
    assert added["job_id"] == welcome["id"] and str(added["user_id"]) == user["id"]
    assert added["details"]["address"] == "ada@example.com"
    assert added["details"]["kind"] == "email.welcome"
    assert by_action["email.failed"]["job_id"] == welcome["id"]  # the refusal itself
    suppressed = by_action["email.suppressed"]
    assert suppressed["job_id"] == resent["id"] and str(suppressed["user_id"]) == user["id"]
    assert suppressed["details"]["error"] == resent["last_error"]
    lifted = by_action["suppression.removed"]
    assert lifted["details"]["address"] == "ada@example.com"
    assert lifted["details"]["by"] == "cli" and lifted["job_id"] is None
    assert [row["action"] for row in audit].count("suppression.removed") == 1


async def test_a_refused_sender_suppresses_nobody(
    settings: Settings, engine: AsyncEngine, mailhog: MailHog, jim: JimAPI
) -> None:
    """MAIL FROM refused: the relay refuses us, not the recipient. Held, then delivered."""
    await jim.on(RejectSenderChance=1)
    with AppProcess(settings) as app:
        async with httpx.AsyncClient(base_url=app.url, timeout=30) as client:
            await register_via_api(client, "ada")
            await wait_until(
                engine, "SELECT state FROM relay_status", lambda f: f == [{"state": "refusing"}]
            )
            await jim.off()
            await job_of(engine, "email.welcome", status="succeeded")
    assert len(await mailhog.wait_for(1)) == 1
    assert await rows(engine, "SELECT * FROM email_suppressions") == []


async def test_a_4xx_or_a_relay_wide_refusal_at_rcpt_suppresses_nobody(
    settings: Settings, engine: AsyncEngine, mailhog: MailHog, jim: JimAPI
) -> None:
    await jim.faults(
        fault("rcpt", "450 4.2.1 Mailbox busy", Match="busy@", Times=1),
        fault("rcpt", "554 5.7.1 <policy@example.com>: Relay access denied", Match="policy@"),
        fault("rcpt", "550 5.7.1 Recipient address rejected: Access denied", Match="denied@"),
    )
    with AppProcess(settings) as app:
        async with httpx.AsyncClient(base_url=app.url, timeout=30) as client:
            for name in ("busy", "policy", "denied"):
                await register_via_api(client, name)
            await wait_until(
                engine,
                "SELECT status FROM jobs WHERE kind = 'email.welcome' ORDER BY id",
                lambda f: [j["status"] for j in f] == ["succeeded", "failed", "failed"],
            )
    [busy] = await mailhog.wait_for(1)
    assert busy.to == ["busy@example.com"]
    assert await rows(engine, "SELECT * FROM email_suppressions") == []
    assert await rows(engine, "SELECT id FROM audit_log WHERE action LIKE 'suppression.%'") == []


async def test_the_operator_page_lists_and_lifts_an_entry(
    settings: Settings, engine: AsyncEngine
) -> None:
    for address, age in (("old@example.com", 9), ("new@example.com", 2)):
        await execute(
            engine,
            "INSERT INTO email_suppressions (address, reason, created_at, job_id) "
            "VALUES (:address, :reason, now() - make_interval(days => :age), 7)",
            address=address,
            reason="SMTPRecipientsRefused: 550 5.1.1 <***@example.com>: No such user <b>",
            age=age,
        )
    async with operator(settings) as client:
        html = await page(client, state="failed")
        assert "Suppressed addresses" in html and "2 addresses" in html
        # Newest first, the reason escaped.
        assert html.index("new@example.com") < html.index("old@example.com")
        assert "No such user &lt;b&gt;" in html
        fields = form_fields(html, "/ops/suppressions/remove", address="old@example.com")

        forged = await client.post(
            "/ops/suppressions/remove", data={**fields, "csrf_token": "forged"}
        )
        assert forged.status_code == 403 and "nothing was done" in forged.text
        assert len(await rows(engine, "SELECT * FROM email_suppressions")) == 2

        lifted = await client.post("/ops/suppressions/remove", data=fields)
        assert lifted.status_code == 303
        assert lifted.headers["location"] == "/ops/jobs?state=failed&suppression=lifted#suppressed"
        shown = await page(client, state="failed", suppression="lifted")
        assert "off the suppression list" in shown and "old@example.com" not in shown

        again = await client.post("/ops/suppressions/remove", data=fields)
        assert again.headers["location"].endswith("suppression=absent#suppressed")
        empty = await client.post("/ops/suppressions/remove", data={**fields, "address": ""})
        assert empty.status_code == 422

    assert [r["address"] for r in await rows(engine, "SELECT * FROM email_suppressions")] == [
        "new@example.com"
    ]
    [removed] = await audit_rows(engine, "suppression.removed")
    assert removed["job_id"] is None
    assert removed["details"]["address"] == "old@example.com"
    assert removed["details"]["by"] == "ops" and removed["details"]["via"] == "ops page"
