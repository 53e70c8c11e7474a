"""No squatting, through a real uvicorn: an unverified account whose latest link expired
more than UNVERIFIED_ACCOUNT_GRACE_HOURS ago is replaced by a new registration of its email
or username (audited), while a fresh unverified account and a verified one still conflict."""

from datetime import timedelta

import httpx
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker

from backend.accounts.schemas import RegistrationIn
from backend.accounts.service import register
from backend.devstack.app_process import AppProcess
from backend.settings import Settings
from tests.support.durability import HASHER
from tests.support.helpers import (
    PASSWORD,
    confirm,
    csrf_token,
    jobs_settled,
    link_path,
    mail_limit,
    register_via_api,
    rows,
    user_json,
)
from tests.support.mailhog import MailHog


def http(app: AppProcess) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=app.url, timeout=10)


async def link_queued_ago(engine: AsyncEngine, username: str, age: timedelta) -> None:
    """As if the account's latest link had been queued `age` ago."""
    async with engine.begin() as connection:
        await connection.execute(
            text(
                "UPDATE users SET verification_sent_at = now() - CAST(:age AS interval), "
                "created_at = now() - CAST(:age AS interval) "
                "WHERE username = :username"
            ),
            {"age": age, "username": username},
        )


def expired_past_grace(settings: Settings) -> timedelta:
    return settings.unverified_replaceable_after + timedelta(minutes=1)


async def test_an_expired_unverified_account_is_replaced_and_audited(
    settings: Settings, mailhog: MailHog, engine: AsyncEngine
) -> None:
    with AppProcess(settings) as app:
        async with http(app) as client:
            squatter = await register_via_api(client, "squatter", email="ada@example.com")
            [old_mail] = await mailhog.wait_for(1)
            await link_queued_ago(engine, "squatter", expired_past_grace(settings))
            await mailhog.clear()

            ada = await client.post("/api/register", json=user_json("ada", "ADA@example.com"))
            # The username is freed too: anyone may now take "squatter".
            reuse = await client.post("/api/register", json=user_json("squatter", "s@example.com"))
            await jobs_settled(engine)
            [welcome] = [m for m in await mailhog.messages() if m.to == ["ADA@example.com"]]
            old_link = await client.get(link_path(old_mail.part("text/plain")))

    assert ada.status_code == 201 and ada.json()["id"] != squatter["id"]
    assert reuse.status_code == 201
    users = await rows(engine, "SELECT username, email FROM users ORDER BY username")
    assert users == [
        {"username": "ada", "email": "ADA@example.com"},
        {"username": "squatter", "email": "s@example.com"},
    ]
    [replaced] = await rows(
        engine,
        "SELECT user_id::text AS user_id, details FROM audit_log WHERE action = 'user.replaced'",
    )
    assert replaced == {
        "user_id": squatter["id"],
        "details": {"replaced_by": ada.json()["id"], "channel": "api"},
    }
    assert welcome.to == ["ADA@example.com"] and "Hi ada," in welcome.part("text/plain")
    # The old account's link names an account that is gone.
    assert old_link.status_code == 400


async def test_an_expired_account_holding_only_the_username_is_replaced(
    settings: Settings, engine: AsyncEngine
) -> None:
    with AppProcess(settings) as app:
        async with http(app) as client:
            old = await register_via_api(client, "bob", email="bob@example.com")
            await link_queued_ago(engine, "bob", expired_past_grace(settings))
            token = csrf_token((await client.get("/register")).text)
            form = await client.post(
                "/register",
                data={"csrf_token": token, **user_json("BOB", "robert@example.com")},
            )
            await jobs_settled(engine)

    assert form.status_code == 303
    assert await rows(engine, "SELECT username FROM users") == [{"username": "BOB"}]
    [replaced] = await rows(
        engine, "SELECT user_id::text AS id, details FROM audit_log WHERE action = 'user.replaced'"
    )
    assert replaced["id"] == old["id"] and replaced["details"]["channel"] == "form"


async def test_a_fresh_unverified_or_a_verified_account_still_conflicts(
    settings: Settings, mailhog: MailHog, engine: AsyncEngine
) -> None:
    within_grace = settings.unverified_replaceable_after - timedelta(minutes=5)
    with AppProcess(settings) as app:
        async with http(app) as client:
            await register_via_api(client, "fresh")
            await link_queued_ago(engine, "fresh", within_grace)
            await register_via_api(client, "verified")
            mails = await mailhog.wait_for(2)
            [verified_mail] = [m for m in mails if m.to == ["verified@example.com"]]
            await confirm(client, link_path(verified_mail.part("text/plain")))
            # Verified long ago, its link long expired: it holds its names for good.
            await link_queued_ago(engine, "verified", timedelta(days=365))

            answers = [
                await client.post("/api/register", json=user_json(name, f"{name}@example.com"))
                for name in ("fresh", "verified")
            ]
            by_email = [
                await client.post("/api/register", json=user_json(f"new{name}", email))
                for name, email in (("a", "fresh@example.com"), ("b", "verified@example.com"))
            ]

    assert [a.status_code for a in answers + by_email] == [409] * 4
    assert len(await rows(engine, "SELECT id FROM users")) == 2
    assert await rows(engine, "SELECT id FROM audit_log WHERE action = 'user.replaced'") == []


async def test_a_resend_keeps_an_expired_account_from_being_replaced(
    settings: Settings, engine: AsyncEngine
) -> None:
    with AppProcess(settings) as app:
        async with http(app) as client:
            await register_via_api(client, "ada")
            await link_queued_ago(engine, "ada", expired_past_grace(settings))
            # Its owner asks for a new link: the account is theirs for another lifetime.
            await client.post("/api/verification/resend", json={"email": "ada@example.com"})
            again = await client.post("/api/register", json=user_json("other", "ada@example.com"))

    assert again.status_code == 409
    assert [u["username"] for u in await rows(engine, "SELECT username FROM users")] == ["ada"]


async def test_a_notice_with_a_fresh_link_keeps_the_account_too(
    settings: Settings, mailhog: MailHog, engine: AsyncEngine
) -> None:
    """Enumeration-safe: the notice to an unverified owner carries a fresh link, which moves
    the account's clock as a resend does (a notice to a verified owner moves nothing)."""
    safe = settings.model_copy(update={"registration_enumeration_safe": True})
    nearly = settings.unverified_replaceable_after - timedelta(minutes=1)
    with AppProcess(safe) as app:
        async with http(app) as client:
            await register_via_api(client, "ada")
            await link_queued_ago(engine, "ada", nearly)
            await register_via_api(client, "ada2", email="ada@example.com")  # pretended
            await jobs_settled(engine)
            [notice] = [m for m in await mailhog.wait_for(2) if "tried" in m.subject]

    [ada] = await rows(engine, "SELECT username, now() - verification_sent_at AS age FROM users")
    assert ada["username"] == "ada" and ada["age"] < timedelta(minutes=1)
    assert "/verify?token=" in notice.part("text/plain")


async def test_in_enumeration_safe_mode_an_expired_account_is_replaced_not_notified(
    settings: Settings, mailhog: MailHog, engine: AsyncEngine
) -> None:
    safe = settings.model_copy(update={"registration_enumeration_safe": True})
    with AppProcess(safe) as app:
        async with http(app) as client:
            await register_via_api(client, "squatter", email="ada@example.com")
            await mailhog.wait_for(1)
            await link_queued_ago(engine, "squatter", expired_past_grace(settings))
            await mailhog.clear()
            ada = await register_via_api(client, "ada")
            await jobs_settled(engine)
            [welcome] = await mailhog.wait_for(1)

    assert [u["username"] for u in await rows(engine, "SELECT username FROM users")] == ["ada"]
    assert str((await rows(engine, "SELECT id FROM users"))[0]["id"]) == ada["id"]
    assert welcome.subject.startswith("Welcome, ada")


async def test_a_queued_email_of_the_replaced_account_fails_alone(
    settings: Settings, mailhog: MailHog, engine: AsyncEngine
) -> None:
    # The old account's welcome email still queued (a relay outage, say), as a request
    # would have left it but never run.
    async with async_sessionmaker(engine, expire_on_commit=False)() as session:
        await register(
            session,
            data=RegistrationIn(username="old", email="ada@example.com", password=PASSWORD),
            channel="api",
            sender_address=settings.mail_from,
            smtputf8=False,
            hasher=HASHER,
            mail_limit=mail_limit(engine, settings),
        )
    await link_queued_ago(engine, "old", expired_past_grace(settings))
    async with engine.begin() as connection:
        # Waiting out a retry's backoff until the replacement below has committed; a fixed
        # few seconds raced a slow app start on a loaded CI machine.
        old_jobs = await connection.execute(
            text("UPDATE jobs SET run_after = now() + interval '1 hour' RETURNING id")
        )
        old_ids = [row.id for row in old_jobs]
    with AppProcess(settings) as app:
        async with http(app) as client:
            await register_via_api(client, "ada")
            async with engine.begin() as connection:
                await connection.execute(
                    text("UPDATE jobs SET run_after = now() WHERE id = ANY(:ids)"),
                    {"ids": old_ids},
                )
            jobs = await jobs_settled(engine)
            [welcome] = await mailhog.wait_for(1)

    assert welcome.subject.startswith("Welcome, ada")
    failed = [j for j in jobs if j["status"] == "failed"]
    assert [(j["kind"], j["last_error"]) for j in failed] == [
        ("email.welcome", "the user no longer exists")
    ]
    assert len(jobs) - len(failed) == 4  # old's audit row; ada's email, audit, replacement
