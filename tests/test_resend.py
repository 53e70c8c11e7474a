"""Resending the verification email, through a real uvicorn: a new link for an unverified
account only, the same answer for every address, 422 for a malformed one, the address's
mail budget (dropped, not refused) and the per-client limit (429)."""

import asyncio

import httpx
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker

from backend.accounts.resend import request_verification_email
from backend.context import AppContext
from backend.devstack.app_process import AppProcess
from backend.settings import Settings
from tests.support.helpers import (
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

NEW_LINK_SUBJECT = "here is your new confirmation link"


def http(app: AppProcess, local_address: str | None = None) -> httpx.AsyncClient:
    transport = httpx.AsyncHTTPTransport(local_address=local_address)
    return httpx.AsyncClient(base_url=app.url, transport=transport, timeout=10)


async def resend_form(client: httpx.AsyncClient, email: str) -> httpx.Response:
    token = csrf_token((await client.get("/verify/resend")).text)
    return await client.post("/verify/resend", data={"csrf_token": token, "email": email})


async def test_an_unverified_account_gets_a_new_link_that_verifies(
    settings: Settings, mailhog: MailHog, engine: AsyncEngine
) -> None:
    with AppProcess(settings) as app:
        async with http(app) as client:
            user = await register_via_api(client, "ada")
            [welcome] = await mailhog.wait_for(1)
            await asyncio.sleep(1.1)  # tokens carry the second they were made in
            answer = await client.post(
                "/api/verification/resend", json={"email": "ADA@example.com"}
            )
            mails = await mailhog.wait_for(2)
            [resent] = [m for m in mails if NEW_LINK_SUBJECT in m.subject]
            confirmed = await confirm(client, link_path(resent.part("text/plain")))

    assert answer.status_code == 202
    assert resent.to == ["ada@example.com"] and resent.subject.startswith("ada, ")
    # A link of its own, in both parts, with the lifetime from the setting.
    new_link = link_path(resent.part("text/plain"))
    assert new_link != link_path(welcome.part("text/plain"))
    assert new_link.replace("&", "&amp;") in resent.part("text/html")
    assert "valid for 48 hours" in resent.part("text/plain")
    assert resent.message_ids != welcome.message_ids
    assert confirmed.status_code == 200 and "Email confirmed" in confirmed.text
    [stored] = await rows(engine, "SELECT email_verified_at FROM users")
    assert stored["email_verified_at"] is not None
    audit = await rows(engine, "SELECT action, user_id, details FROM audit_log ORDER BY id")
    requested = [a for a in audit if a["action"] == "user.verification_requested"]
    assert [(str(a["user_id"]), a["details"]) for a in requested] == [
        (user["id"], {"channel": "api"})
    ]
    sent_kinds = [a["details"]["kind"] for a in audit if a["action"] == "email.sent"]
    assert sorted(sent_kinds) == ["email.verification", "email.welcome"]


async def test_the_form_sends_a_new_link_too(
    settings: Settings, mailhog: MailHog, engine: AsyncEngine
) -> None:
    with AppProcess(settings) as app:
        async with http(app) as client:
            await register_via_api(client, "bob")
            form = await client.get("/verify/resend")
            answer = await resend_form(client, "bob@example.com")
            mails = await mailhog.wait_for(2)

    assert form.status_code == 200
    assert 'name="email"' in form.text and 'type="hidden" name="csrf_token"' in form.text
    assert form.headers["cache-control"] == "no-store"
    assert answer.status_code == 200 and answer.headers["cache-control"] == "no-store"
    assert "a new confirmation link is on its way" in answer.text
    assert "valid for 48 hours" in answer.text
    assert sorted(NEW_LINK_SUBJECT in m.subject for m in mails) == [False, True]
    [requested] = await rows(
        engine, "SELECT details FROM audit_log WHERE action = 'user.verification_requested'"
    )
    assert requested["details"] == {"channel": "form"}


async def test_every_address_gets_the_same_answer_and_only_the_unverified_an_email(
    settings: Settings, mailhog: MailHog, engine: AsyncEngine
) -> None:
    with AppProcess(settings) as app:
        async with http(app) as client:
            await register_via_api(client, "vera")
            await register_via_api(client, "una")
            mails = await mailhog.wait_for(2)
            [vera_welcome] = [m for m in mails if m.to == ["vera@example.com"]]
            await confirm(client, link_path(vera_welcome.part("text/plain")))  # vera verifies
            await jobs_settled(engine)

            addresses = ["vera@example.com", "nobody@example.com", "una@example.com"]
            api = [
                await client.post("/api/verification/resend", json={"email": address})
                for address in addresses
            ]
            pages = [await resend_form(client, address) for address in addresses]
            jobs = await jobs_settled(engine)
            mails = await mailhog.wait_for(4)

    assert {(r.status_code, r.text) for r in api} == {(202, api[0].text)}
    assert [p.status_code for p in pages] == [200, 200, 200]
    # The same page but for the address it repeats.
    assert len({p.text.replace(a, "ADDRESS") for p, a in zip(pages, addresses, strict=True)}) == 1
    # Two new links, both to una (one per face); none to the verified or unknown address.
    resent = [m.to for m in mails if NEW_LINK_SUBJECT in m.subject]
    assert resent == [["una@example.com"]] * 2
    assert len(mails) == 4
    assert [j["kind"] for j in jobs].count("email.verification") == 2


async def test_a_malformed_address_is_422(settings: Settings, engine: AsyncEngine) -> None:
    with AppProcess(settings) as app:
        async with http(app) as client:
            answers = [
                await client.post("/api/verification/resend", json=body)
                for body in ({"email": "not-an-address"}, {"email": ""}, {}, {"mail": "a@b.c"})
            ]
            form = await resend_form(client, "grace-at-example")

    assert [a.status_code for a in answers] == [422] * 4
    assert all(a.json()["detail"][0]["loc"][:2] == ["body", "email"] for a in answers[:2])
    assert form.status_code == 422
    assert "Enter a valid email address" in form.text
    assert 'value="grace-at-example"' in form.text and 'aria-invalid="true"' in form.text
    assert await rows(engine, "SELECT id FROM jobs") == []


async def test_a_form_without_its_csrf_token_is_refused(settings: Settings) -> None:
    with AppProcess(settings) as app:
        async with http(app) as client:
            await client.get("/verify/resend")
            answer = await client.post(
                "/verify/resend", data={"csrf_token": "forged", "email": "a@example.com"}
            )
    assert answer.status_code == 403
    assert "did not come from this site" in answer.text


async def test_the_fourth_email_to_an_address_in_the_hour_is_dropped_with_the_same_answer(
    settings: Settings, mailhog: MailHog, engine: AsyncEngine
) -> None:
    # MAIL_PER_ADDRESS_LIMIT's default, 3/hour: the welcome email and two resends.
    assert settings.mail_per_address_limit == "3/hour"
    with AppProcess(settings) as app:
        async with http(app) as client:
            await register_via_api(client, "bob")
            answers = [
                await client.post("/api/verification/resend", json={"email": "bob@example.com"})
                for _ in range(3)
            ]
            # An unknown address is counted alike: its fourth request is over too.
            unknown = [
                await client.post("/api/verification/resend", json={"email": "nemo@example.com"})
                for _ in range(4)
            ]
            jobs = await jobs_settled(engine)
            mails = await mailhog.wait_for(3)
            await asyncio.sleep(1)  # time for a fourth that should not come
            mails = await mailhog.messages()

    assert {(a.status_code, a.text) for a in answers + unknown} == {(202, answers[0].text)}
    assert [m.to for m in mails] == [["bob@example.com"]] * 3
    assert [j["kind"] for j in jobs].count("email.verification") == 2
    assert await mail_limit(engine, settings).retry_after(address="NEMO@example.com") is not None


async def test_resends_are_limited_per_client_whatever_the_address(settings: Settings) -> None:
    limited = settings.model_copy(update={"resend_rate_limit": "2/minute"})
    with AppProcess(limited) as app:
        async with http(app, "127.0.0.1") as client, http(app, "127.0.0.2") as other:
            token = csrf_token((await client.get("/verify/resend")).text)
            first = await client.post("/api/verification/resend", json={"email": "a@example.com"})
            second = await client.post(
                "/verify/resend", data={"csrf_token": token, "email": "b@example.com"}
            )
            api = await client.post("/api/verification/resend", json={"email": "c@example.com"})
            form = await client.post(
                "/verify/resend", data={"csrf_token": token, "email": "d@example.com"}
            )
            elsewhere = await other.post(
                "/api/verification/resend", json={"email": "c@example.com"}
            )

    assert (first.status_code, second.status_code) == (202, 200)
    assert api.status_code == 429 and 1 <= int(api.headers["retry-after"]) <= 60
    assert "Too many requests" in api.json()["detail"]
    assert form.status_code == 429 and 1 <= int(form.headers["retry-after"]) <= 60
    assert "Too many requests" in form.text and 'value="d@example.com"' in form.text
    assert elsewhere.status_code == 202


async def test_a_link_resent_to_someone_verified_since_is_not_sent(
    settings: Settings, mailhog: MailHog, engine: AsyncEngine
) -> None:
    context = AppContext.build(settings.model_copy(update={"job_worker_enabled": False}))
    try:
        async with context.sessionmaker() as session:
            await session.execute(
                text(
                    "INSERT INTO users (id, username, email, password_hash) "
                    "VALUES (gen_random_uuid(), 'late', 'late@example.com', 'x')"
                )
            )
            await session.commit()
        async with async_sessionmaker(engine)() as session:
            requested = await request_verification_email(
                session,
                email="late@example.com",
                channel="api",
                sender_address=settings.mail_from,
                mail_limit=context.mail_limit,
            )
        # Confirmed (with an earlier link) before the resend job runs.
        async with engine.begin() as connection:
            await connection.execute(text("UPDATE users SET email_verified_at = now()"))
        await context.runner.drain()
    finally:
        await context.close()

    assert len(requested.job_ids) == 2
    assert await mailhog.messages() == []
    [skipped] = await rows(engine, "SELECT details FROM audit_log WHERE action = 'email.skipped'")
    assert skipped["details"]["reason"] == "already verified"
    assert {j["status"] for j in await jobs_settled(engine)} == {"succeeded"}


async def test_the_already_registered_messages_lead_to_the_resend(settings: Settings) -> None:
    with AppProcess(settings) as app:
        async with http(app) as client:
            await register_via_api(client, "ada")
            api = await client.post("/api/register", json=user_json("other", "ada@example.com"))
            token = csrf_token((await client.get("/register")).text)
            taken_email = await client.post(
                "/register", data={"csrf_token": token, **user_json("other", "ADA@example.com")}
            )
            taken_name = await client.post(
                "/register", data={"csrf_token": token, **user_json("ada", "new@example.com")}
            )

    assert api.status_code == 409
    [error] = api.json()["detail"]
    assert error["msg"].startswith("An account with this email already exists")
    assert "POST /api/verification/resend" in error["msg"]
    assert taken_email.status_code == 409
    assert '<a href="/verify/resend">Get a new confirmation link</a>' in taken_email.text
    # A taken username is no lost link.
    assert taken_name.status_code == 409 and "/verify/resend" not in taken_name.text
