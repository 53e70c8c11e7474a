"""What became of a person's emails, as they see it: GET /api/me/emails and "Your emails"
on /account, through a real uvicorn and the inbox; the relay down (the SMTP proxy) and
back, an operator's cancel, only one's own emails, 401 without a token; an email to an
address of its own, suppressed, its answer masked; and the query through its index."""

import json
import uuid
from datetime import datetime
from typing import Any

import httpx
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker

from backend.accounts import mail_status
from backend.audit.service import record_job_actions
from backend.devstack.app_process import AppProcess
from backend.devstack.smtp_proxy import SmtpProxy
from backend.jobs import admin
from backend.models import User
from backend.settings import Settings
from tests.support.durability import through_proxy, wait_until
from tests.support.helpers import (
    bearer_token,
    confirmed_user,
    execute,
    jobs_settled,
    rows,
    sign_in_form,
)
from tests.support.mailhog import MailHog

USER_ID = uuid.UUID("00000000-0000-4000-8000-000000000001")
FIELDS = {"kind", "to", "status", "attempts", "queued_at", "sent_at", "last_error"}


async def my_emails(http: httpx.AsyncClient, token: str) -> list[dict[str, Any]]:
    answer = await http.get("/api/me/emails", headers={"Authorization": f"Bearer {token}"})
    assert answer.status_code == 200, answer.text
    items: list[dict[str, Any]] = answer.json()["items"]
    assert all(set(item) == FIELDS for item in items)
    return items


async def test_the_api_lists_my_emails_newest_first_and_nobody_elses(
    settings: Settings, engine: AsyncEngine, mailhog: MailHog
) -> None:
    with AppProcess(settings) as app:
        async with httpx.AsyncClient(base_url=app.url, timeout=30) as http:
            await confirmed_user(http, engine, "ada")
            await confirmed_user(http, engine, "bob")
            await mailhog.wait_for(2)
            forgot = await http.post("/api/password/forgot", json={"email": "ada@example.com"})
            assert forgot.status_code == 202
            await mailhog.wait_for(3)
            await jobs_settled(engine)
            ada = await my_emails(http, await bearer_token(http, "ada"))
            bob = await my_emails(http, await bearer_token(http, "bob"))

            anonymous = await http.get("/api/me/emails")
            forged = await http.get(
                "/api/me/emails", headers={"Authorization": "Bearer not-a-token"}
            )

    assert [item["kind"] for item in ada] == ["email.password_reset", "email.welcome"]
    for item in ada:
        assert item["to"] == "ada@example.com"
        assert (item["status"], item["attempts"], item["last_error"]) == ("sent", 1, None)
        queued, sent = (datetime.fromisoformat(item[k]) for k in ("queued_at", "sent_at"))
        assert queued <= sent
    assert ada[0]["queued_at"] > ada[1]["queued_at"]
    assert [(item["kind"], item["to"]) for item in bob] == [("email.welcome", "bob@example.com")]
    for answer in (anonymous, forged):
        assert answer.status_code == 401
        assert answer.headers["www-authenticate"] == "Bearer"
        assert "items" not in answer.json()


async def test_retrying_while_the_relay_is_down_then_sent_and_a_cancel_stays_cancelled(
    settings: Settings, proxy: SmtpProxy, engine: AsyncEngine, mailhog: MailHog
) -> None:
    proxy.down()
    with AppProcess(through_proxy(settings, proxy)) as app:
        async with httpx.AsyncClient(base_url=app.url, timeout=30) as http:
            await confirmed_user(http, engine, "ada")
            # Tried, and held back: it has the relay's last answer.
            await wait_until(
                engine,
                "SELECT id FROM jobs WHERE kind = 'email.welcome' "
                "AND status = 'pending' AND last_error IS NOT NULL",
                bool,
            )
            ada_token = await bearer_token(http, "ada")
            [waiting] = await my_emails(http, ada_token)
            # Not tried at all while the relay is known to be away: queued.
            bob = await confirmed_user(http, engine, "bob")
            bob_token = await bearer_token(http, "bob")
            [queued] = await my_emails(http, bob_token)
            [bob_job] = await rows(
                engine,
                "SELECT id FROM jobs WHERE kind = 'email.welcome' AND payload->>'user_id' = :id",
                id=bob["id"],
            )
            await _cancel(engine, bob_job["id"])
            [cancelled] = await my_emails(http, bob_token)

            proxy.up()
            await wait_until(
                engine,
                "SELECT id FROM jobs WHERE kind = 'email.welcome' AND status = 'succeeded'",
                bool,
            )
            [sent] = await my_emails(http, ada_token)
            await jobs_settled_but_cancelled(engine)
            [still_cancelled] = await my_emails(http, bob_token)

    assert (waiting["status"], waiting["attempts"], waiting["sent_at"]) == ("retrying", 0, None)
    assert "SMTPConnectError" in waiting["last_error"]
    assert (queued["status"], queued["attempts"], queued["last_error"]) == ("queued", 0, None)
    assert (cancelled["status"], cancelled["sent_at"]) == ("cancelled", None)
    assert sent["status"] == "sent" and sent["sent_at"] is not None
    assert (sent["attempts"], sent["last_error"]) == (1, None)
    assert still_cancelled == cancelled
    assert [m.to for m in await mailhog.messages()] == [["ada@example.com"]]


async def test_the_account_page_lists_the_emails_in_words(
    settings: Settings, engine: AsyncEngine, mailhog: MailHog
) -> None:
    with AppProcess(settings) as app:
        async with httpx.AsyncClient(base_url=app.url, timeout=30, follow_redirects=True) as http:
            await confirmed_user(http, engine, "ada")
            await mailhog.wait_for(1)
            await jobs_settled(engine)
            page = await sign_in_form(http, "ada")
        async with httpx.AsyncClient(base_url=app.url, timeout=30) as stranger:
            anonymous = await stranger.get("/account")

    assert page.status_code == 200 and str(page.url).endswith("/account")
    html = page.text
    assert "Your emails" in html
    assert "Welcome email" in html and "ada@example.com" in html
    assert 'class="state state-sent">Sent<' in html
    assert "If it isn&#39;t in your inbox, check your spam folder" in html
    assert anonymous.status_code == 303 and anonymous.headers["location"] == "/login"


async def jobs_settled_but_cancelled(engine: AsyncEngine) -> None:
    await wait_until(
        engine,
        "SELECT id FROM jobs WHERE status IN ('pending', 'running')",
        lambda found: not found,
    )


async def _cancel(engine: AsyncEngine, job_id: int) -> None:
    async with async_sessionmaker(engine)() as session:
        cancelled = await admin.cancel(session, by="test", record=record_job_actions, job_id=job_id)
        ids = [job.id for job in cancelled]
        await session.commit()
    assert ids == [job_id]


async def test_an_address_of_its_own_and_a_suppressed_email_with_its_answer_masked(
    settings: Settings, engine: AsyncEngine, mailhog: MailHog
) -> None:
    with AppProcess(settings) as app:
        async with httpx.AsyncClient(base_url=app.url, timeout=30) as http:
            ada = await confirmed_user(http, engine, "ada")
            await mailhog.wait_for(1)
            await jobs_settled(engine)
            # As an email to another address ends when that address is suppressed (its
            # answer unmasked here: masked again on the way out).
            await execute(
                engine,
                "INSERT INTO jobs (kind, payload, status, attempts, last_error, finished_at) "
                "VALUES ('email.address_change', jsonb_build_object('user_id', "
                "CAST(:user_id AS text), 'to', 'ada.new@example.org'), 'failed', 0, "
                "'suppressed: 550 5.1.1 <ada.new@example.org>: no such user', now())",
                user_id=ada["id"],
            )
            [suppressed, welcome] = await my_emails(http, await bearer_token(http, "ada"))

    assert suppressed["kind"] == "email.address_change"
    assert (suppressed["to"], suppressed["status"]) == ("ada.new@example.org", "suppressed")
    assert suppressed["last_error"] == "suppressed: 550 5.1.1 <***@example.org>: no such user"
    assert suppressed["sent_at"] is None
    assert (welcome["to"], welcome["status"]) == ("ada@example.com", "sent")


async def test_a_persons_emails_are_read_through_their_index(
    engine: AsyncEngine, clean: None
) -> None:
    """Whatever plan the prepared statement gets (generic, here), one person's emails are
    found without reading anyone else's, nor the audit jobs."""
    async with engine.begin() as connection:
        await connection.execute(
            text(
                "INSERT INTO jobs (kind, payload, status) "
                "SELECT CASE WHEN n % 2 = 0 THEN 'email.welcome' ELSE 'audit.write' END, "
                "jsonb_build_object('user_id', CAST(gen_random_uuid() AS text)), 'succeeded' "
                "FROM generate_series(1, 5000) AS n"
            )
        )
        await connection.execute(
            text(
                "INSERT INTO jobs (kind, payload, status) SELECT 'email.welcome', "
                "jsonb_build_object('user_id', CAST(:user_id AS text)), 'succeeded' "
                "FROM generate_series(1, 3)"
            ),
            {"user_id": str(USER_ID)},
        )
        await connection.execute(text("ANALYZE jobs"))
    user = User(id=USER_ID, email="ada@example.com")
    async with async_sessionmaker(engine)() as session:
        assert len(await mail_status.emails_of(session, user=user)) == 3
    compiled = mail_status.emails_query(str(USER_ID)).compile(dialect=engine.dialect)
    values = ", ".join(f"'{compiled.params[name]}'" for name in compiled.positiontup or [])
    async with engine.connect() as connection:
        await connection.exec_driver_sql("SET plan_cache_mode = force_generic_plan")
        await connection.exec_driver_sql(f"PREPARE mine AS {compiled}")
        explained = await connection.scalar(
            text(f"EXPLAIN (ANALYZE, FORMAT JSON) EXECUTE mine({values})")
        )
        await connection.rollback()
    [plan] = json.loads(explained) if isinstance(explained, str) else explained
    assert "ix_jobs_email_by_user" in json.dumps(plan)
    assert _rows_read(plan["Plan"]) <= 3


def _rows_read(plan: dict[str, Any]) -> int:
    read = 0
    if plan.get("Relation Name") == "jobs":
        read += plan["Actual Rows"] * plan["Actual Loops"] + plan.get("Rows Removed by Filter", 0)
    return read + sum(_rows_read(child) for child in plan.get("Plans", []))
