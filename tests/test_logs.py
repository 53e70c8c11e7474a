"""Logs a person and a machine can follow, from real uvicorn processes: JSON lines outside
development, text in it, each with a time and a level; one registration followed by its
request id from the POST to the SMTP 250 (and to its retries and its give-up); database
errors logged without the values of the refused row."""

import re
import uuid

import httpx
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from backend.devstack.app_process import AppProcess
from backend.settings import Settings
from tests.support.helpers import rows, user_json
from tests.support.jim import JimAPI
from tests.support.logs import Line, wait_for_lines
from tests.support.mailhog import MailHog

DELIVERED = re.compile(r"delivered <[^>]+> to the relay: 250 ")


def delivered(lines: list[Line], request_id: str) -> list[Line]:
    return [
        line
        for line in lines
        if line.get("request_id") == request_id and DELIVERED.match(line["message"])
    ]


async def test_one_registration_followed_from_the_post_to_the_smtp_250(
    settings: Settings, mailhog: MailHog, engine: AsyncEngine
) -> None:
    chosen = f"follow-{uuid.uuid4().hex[:8]}"
    with AppProcess(settings) as app:
        async with httpx.AsyncClient(base_url=app.url, timeout=30) as http:
            ada = await http.post(
                "/api/register", json=user_json("ada"), headers={"X-Request-ID": chosen}
            )
            bob = await http.post("/api/register", json=user_json("bob"))
        assert ada.status_code == bob.status_code == 201
        assert ada.headers["x-request-id"] == chosen
        made = bob.headers["x-request-id"]
        assert re.fullmatch(r"[0-9a-f]{32}", made)
        assert len(await mailhog.wait_for(2)) == 2
        lines = await wait_for_lines(
            app, lambda lines: bool(delivered(lines, chosen) and delivered(lines, made))
        )

    jobs = await rows(engine, "SELECT id, kind, request_id FROM jobs ORDER BY id")
    assert [(job["kind"], job["request_id"]) for job in jobs] == [
        ("email.welcome", chosen),
        ("audit.write", chosen),
        ("email.welcome", made),
        ("audit.write", made),
    ]
    # Every line, uvicorn's included, is one JSON object with a time and a level.
    assert all({"time", "level", "logger", "message"} <= line.keys() for line in lines)
    assert all(re.fullmatch(r"\d{4}-\d\d-\d\dT[\d:.]+\+00:00", line["time"]) for line in lines)
    # Ada's request, followed by its id: the POST, then her email's delivery, with the
    # relay's reply and the job that sent it.
    ours = [line for line in lines if line.get("request_id") == chosen]
    [post] = [line for line in ours if line["logger"] == "uvicorn.access"]
    assert (post["method"], post["path"], post["status"]) == ("POST", "/api/register", 201)
    [sent] = delivered(lines, chosen)
    assert (sent["level"], sent["job_id"], sent["job_kind"]) == (
        "INFO",
        jobs[0]["id"],
        "email.welcome",
    )
    assert delivered(lines, made)[0]["job_id"] == jobs[2]["id"]
    # Nobody's address is in the log.
    assert "ada@example.com" not in app.log() and "bob@example.com" not in app.log()


async def test_retries_and_give_ups_carry_the_request_id(
    settings: Settings, mailhog: MailHog, jim: JimAPI
) -> None:
    busy = {"Stage": "rcpt", "Reply": "450 4.2.1 Mailbox busy", "Match": "busy@", "Times": 1}
    refused = {"Stage": "rcpt", "Reply": "550 5.1.1 No such user", "Match": "gone@"}
    await jim.faults(busy, refused)
    with AppProcess(settings) as app:
        async with httpx.AsyncClient(base_url=app.url, timeout=30) as http:
            for name in ("busy", "gone"):
                answer = await http.post(
                    "/api/register", json=user_json(name), headers={"X-Request-ID": f"req-{name}"}
                )
                assert answer.status_code == 201
        await mailhog.wait_for(1)

        def about(lines: list[Line], request_id: str, words: str) -> list[Line]:
            return [
                line
                for line in lines
                if line.get("request_id") == request_id and words in line["message"]
            ]

        lines = await wait_for_lines(
            app,
            lambda lines: bool(
                about(lines, "req-busy", "attempt 1 failed, retry in")
                and delivered(lines, "req-busy")
                and about(lines, "req-gone", "failed for good")
            ),
        )
    [retry] = about(lines, "req-busy", "attempt 1 failed")
    assert retry["level"] == "WARNING" and retry["job_kind"] == "email.welcome"
    assert "SMTPRecipientsRefused: 450 4.2.1 Mailbox busy" in retry["message"]
    [gave_up] = about(lines, "req-gone", "failed for good")
    assert gave_up["level"] == "ERROR" and gave_up["job_kind"] == "email.welcome"
    assert delivered(lines, "req-busy")[0]["job_id"] == retry["job_id"]


async def test_a_database_error_is_logged_without_the_refused_values(
    settings: Settings, engine: AsyncEngine
) -> None:
    """A refused insert (here a CHECK the test adds: Postgres then puts the whole row, the
    password hash with it, in the error's DETAIL) ends in a 500 whose traceback is logged:
    with the request id, without the SQL parameters and without the DETAIL."""
    address = "carol-secret@example.com"
    constraint = "test_refuses_carol"
    async with engine.begin() as connection:
        await connection.execute(
            text(f"ALTER TABLE users ADD CONSTRAINT {constraint} CHECK (email <> '{address}')")
        )
    try:
        with AppProcess(settings) as app:
            async with httpx.AsyncClient(base_url=app.url, timeout=30) as http:
                answer = await http.post(
                    "/api/register",
                    json=user_json("carol", email=address),
                    headers={"X-Request-ID": "db-error"},
                )
            assert answer.status_code == 500
            assert answer.headers["x-request-id"] == "db-error"
            lines = await wait_for_lines(
                app,
                lambda lines: any(
                    line.get("request_id") == "db-error" and "exc_info" in line for line in lines
                ),
            )
            log = app.log()
    finally:
        async with engine.begin() as connection:
            await connection.execute(text(f"ALTER TABLE users DROP CONSTRAINT {constraint}"))

    [error] = [line for line in lines if "exc_info" in line]
    assert error["level"] == "ERROR"
    traceback = error["exc_info"]
    assert "CheckViolationError" in traceback and constraint in traceback
    assert "[SQL parameters hidden due to hide_parameters=True]" in traceback
    assert "DETAIL:  (hidden" in traceback
    assert "Failing row" not in log
    assert address not in log
    assert "$argon2" not in log


async def test_development_lines_are_text_with_the_request_id(settings: Settings) -> None:
    development = settings.model_copy(update={"environment": "development"})
    with AppProcess(development) as app:
        async with httpx.AsyncClient(base_url=app.url, timeout=30) as http:
            await http.get("/livez", headers={"X-Request-ID": "dev-livez"})
            await http.get("/verify?token=secret.token-value&x=1")
        app.terminate()
        log = app.log()
    lines = log.splitlines()
    line_start = re.compile(
        r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} (DEBUG|INFO|WARNING|ERROR) +\S+: "
    )
    assert lines and all(line_start.match(line) for line in lines), log
    [access] = [line for line in lines if "GET /livez" in line]
    assert access.endswith("  request_id=dev-livez")
    assert not any(line.lstrip().startswith("{") for line in lines)
    # A verification token is a secret: the access line keeps the path, not the token.
    assert "secret.token-value" not in log
    assert '"GET /verify?token=(hidden)&x=1 HTTP/1.1"' in log
