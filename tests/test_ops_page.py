"""The operator page, /ops/jobs: off without OPS_PASSWORD, basic auth, the listing and its
filters, retry and cancel for one job or a filtered set, CSRF, and the audit rows.

The app runs in-process with its lifespan (as the form tests do): each response returns
once the background work it started is done, so a retried email is in the inbox by then.
"""

import asyncio
import contextlib
import getpass
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from pydantic import SecretStr
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from backend.context import AppContext
from backend.settings import Settings
from tests.conftest import app_client
from tests.durability import queue_registrations
from tests.helpers import register_via_api, rows
from tests.support.jim import JimAPI
from tests.support.mailhog import MailHog
from tests.support.ops import (
    OPS_AUTH,
    OPS_PASSWORD,
    PAYLOAD_SECRET,
    form_fields,
    seed_jobs,
    table_ids,
)
from tests.support.server import settings_env
from tests.test_relay_faults import fault

REFUSE_RCPT = fault("rcpt", "550 5.1.1 No such user")


def ops_settings(settings: Settings, **overrides: Any) -> Settings:
    return settings.model_copy(update={"ops_password": SecretStr(OPS_PASSWORD), **overrides})


@contextlib.asynccontextmanager
async def operator(settings: Settings, **overrides: Any) -> AsyncIterator[httpx.AsyncClient]:
    """The app with the operator page on, and a client signed in to it."""
    async with app_client(ops_settings(settings, **overrides)) as client:
        client.auth = OPS_AUTH
        yield client


async def page(client: httpx.AsyncClient, **params: str) -> str:
    response = await client.get("/ops/jobs", params=params)
    assert response.status_code == 200, response.text
    assert response.headers["cache-control"] == "no-store"
    return response.text


async def post(client: httpx.AsyncClient, action: str, fields: dict[str, str]) -> httpx.Response:
    return await client.post(f"/ops/jobs/{action}", data=fields)


async def audit_rows(engine: AsyncEngine, action: str) -> list[dict[str, Any]]:
    return await rows(
        engine, "SELECT job_id, details FROM audit_log WHERE action = :a ORDER BY job_id", a=action
    )


async def statuses(engine: AsyncEngine) -> dict[int, str]:
    return {r["id"]: r["status"] for r in await rows(engine, "SELECT id, status FROM jobs")}


async def test_without_ops_password_there_is_no_such_page(client: httpx.AsyncClient) -> None:
    for response in (
        await client.get("/ops/jobs"),
        await client.get("/ops/jobs", auth=OPS_AUTH),
        await client.post("/ops/jobs/retry", auth=OPS_AUTH, data={"job_id": "1"}),
        await client.get("/ops/"),
    ):
        assert response.status_code == 404
        assert response.json() == {"detail": "Not Found"}  # as for any unknown path
        assert "www-authenticate" not in response.headers


@pytest.mark.parametrize(
    "auth",
    [
        pytest.param(None, id="no-credentials"),
        pytest.param(("ops", OPS_PASSWORD[:-1]), id="wrong-password"),
        pytest.param(("admin", OPS_PASSWORD), id="wrong-user"),
        pytest.param(("ops", ""), id="empty-password"),
    ],
)
async def test_the_page_asks_for_the_operators_credentials(
    settings: Settings, auth: tuple[str, str] | None
) -> None:
    given = auth or httpx.USE_CLIENT_DEFAULT  # the client's default: none
    async with app_client(ops_settings(settings)) as client:
        for response in (
            await client.get("/ops/jobs", auth=given),
            await client.post("/ops/jobs/retry", auth=given, data={"job_id": "1"}),
        ):
            assert response.status_code == 401
            assert response.headers["www-authenticate"] == 'Basic realm="ops"'
            assert response.headers["cache-control"] == "no-store"
        malformed = await client.get("/ops/jobs", headers={"Authorization": "Basic !!!"})
        assert malformed.status_code == 401
        assert (await client.get("/ops/jobs", auth=OPS_AUTH)).status_code == 200


async def test_guesses_past_the_limit_are_not_even_tried(settings: Settings) -> None:
    app = app_client(ops_settings(settings))
    async with app as client:
        for _ in range(60):
            wrong = await client.get("/ops/jobs", auth=("ops", "guess"))
            assert wrong.status_code == 401
        refused = await client.get("/ops/jobs", auth=OPS_AUTH)
        assert refused.status_code == 429 and int(refused.headers["retry-after"]) >= 1
        # Another client is not held up by this one.
        async with app.new_client(("10.0.0.9", 4000)) as other:
            assert (await other.get("/ops/jobs", auth=OPS_AUTH)).status_code == 200


async def test_lists_counts_relay_and_jobs_filtered_newest_first_without_payloads(
    settings: Settings, engine: AsyncEngine
) -> None:
    ids = await seed_jobs(engine)
    async with engine.begin() as connection:
        await connection.execute(
            text(
                "INSERT INTO relay_status (relay, state, since, last_error) "
                "VALUES ('smtp.example:25', 'refusing', now(), '535 5.7.8 Bad credentials')"
            )
        )
        script = await connection.scalar(
            text(
                "INSERT INTO jobs (kind, payload, status, last_error) VALUES ('email.welcome', "
                "'{}', 'cancelled', '<script>alert(1)</script> 552 5.3.4 Too big') RETURNING id"
            )
        )
    ids.setdefault("cancelled", []).append(script)
    async with operator(settings, job_worker_enabled=False) as client:
        everything = await page(client)
        failed = await page(client, state="failed")
        failed_welcome = await page(client, state="failed", kind="email.welcome")
        audit = await page(client, kind="audit.write")
        unknown = await client.get("/ops/jobs", params={"state": "lost"})

    every_id = sorted((i for group in ids.values() for i in group), reverse=True)
    welcome = await rows(
        engine, "SELECT id FROM jobs WHERE status = 'failed' AND kind = 'email.welcome'"
    )
    assert table_ids(everything) == every_id
    assert table_ids(failed) == sorted(ids["failed"], reverse=True)
    assert table_ids(failed_welcome) == sorted((w["id"] for w in welcome), reverse=True)
    assert len(table_ids(audit)) == 2
    # The counts table: each non-zero count links to its filter.
    assert '<a href="/ops/jobs?state=failed&amp;kind=email.welcome">2</a>' in everything
    assert '<a href="/ops/jobs?state=failed">3</a>' in everything
    # The relay as the senders last recorded it.
    assert "smtp.example:25" in everything and "535 5.7.8 Bad credentials" in everything
    # What a row shows, and never: payloads, unescaped errors.
    assert "gave up after 120 hours in the queue" in everything
    assert PAYLOAD_SECRET not in everything and "tok-" not in everything
    assert "<script>alert(1)</script>" not in everything
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in everything
    # Bulk actions only for a state they apply to; running jobs have none.
    assert "Retry all 3" in failed and "Cancel all 3" in failed
    assert "Retry all" not in everything and "held by its worker" in everything
    assert unknown.status_code == 422 and "There is no state" in unknown.text


async def test_retrying_a_failed_email_delivers_it_and_is_audited(
    settings: Settings, engine: AsyncEngine, mailhog: MailHog, jim: JimAPI
) -> None:
    await jim.faults({**REFUSE_RCPT, "Match": "ada@"})
    async with operator(settings) as client:
        await register_via_api(client, "ada")
        [job] = await rows(
            engine, "SELECT id, status, last_error FROM jobs WHERE kind = 'email.welcome'"
        )
        assert job["status"] == "failed" and "550" in job["last_error"]
        await jim.off()

        html = await page(client, state="failed")
        assert f"Retry job {job['id']}" in html
        response = await post(
            client, "retry", form_fields(html, "/ops/jobs/retry", job_id=job["id"])
        )
        assert response.status_code == 303
        assert response.headers["location"] == (
            f"/ops/jobs?state=failed&done=retried&count=1&job={job['id']}"
        )
        notice = await page(client, state="failed", done="retried", count="1", job=str(job["id"]))
        assert f"Job {job['id']} retried." in notice

    [mail] = await mailhog.wait_for(1)
    assert mail.to == ["ada@example.com"]
    assert (await statuses(engine))[job["id"]] == "succeeded"
    [retried] = await audit_rows(engine, "job.retried")
    assert retried["job_id"] == job["id"]
    assert retried["details"] == {
        "kind": "email.welcome",
        "by": "ops",
        "via": "ops page",
        "client": "127.0.0.1",
        "last_error": job["last_error"],
    }


async def test_retrying_a_filtered_set_takes_the_jobs_the_page_showed(
    settings: Settings, engine: AsyncEngine, mailhog: MailHog, jim: JimAPI
) -> None:
    await jim.faults(REFUSE_RCPT)
    async with operator(settings) as client:
        for name in ("ada", "bob", "cyd"):
            await register_via_api(client, name)
        html = await page(client, state="failed", kind="email.welcome")
        assert "Retry all 3" in html
        bulk = form_fields(html, "/ops/jobs/retry", job_id=None)
        # Failed after the page was shown: not part of what the operator confirmed.
        await register_via_api(client, "dee")
        await jim.off()
        response = await post(client, "retry", bulk)
        assert response.status_code == 303
        assert response.headers["location"] == (
            "/ops/jobs?state=failed&kind=email.welcome&done=retried&count=3"
        )

    mails = await mailhog.wait_for(3)
    assert sorted(m.to[0] for m in mails) == [f"{n}@example.com" for n in ("ada", "bob", "cyd")]
    welcome = await rows(
        engine, "SELECT id, status FROM jobs WHERE kind = 'email.welcome' ORDER BY id"
    )
    assert [w["status"] for w in welcome] == ["succeeded"] * 3 + ["failed"]
    retried = await audit_rows(engine, "job.retried")
    assert [r["job_id"] for r in retried] == [w["id"] for w in welcome[:3]]
    expected = {"state": "failed", "kind": "email.welcome", "through": welcome[2]["id"]}
    assert [r["details"]["filter"] for r in retried] == [expected] * 3


async def test_a_cancelled_job_never_runs_and_running_jobs_are_left_alone(
    settings: Settings, engine: AsyncEngine, mailhog: MailHog
) -> None:
    await queue_registrations(engine, settings, 3)  # pending welcome emails, not yet run
    pending = [
        r["id"] for r in await rows(engine, "SELECT id FROM jobs WHERE kind = 'email.welcome'")
    ]
    async with engine.begin() as connection:
        running = await connection.scalar(
            text(
                "INSERT INTO jobs (kind, payload, status, attempts, leased_until, lease_token) "
                "VALUES ('email.welcome', '{}', 'running', 1, now() + interval '1 hour', "
                "gen_random_uuid()) RETURNING id"
            )
        )
    async with operator(settings, job_worker_enabled=False) as client:
        html = await page(client, state="pending", kind="email.welcome")
        one = await post(client, "cancel", form_fields(html, "/ops/jobs/cancel", job_id=pending[0]))
        assert one.headers["location"].endswith(f"done=cancelled&count=1&job={pending[0]}")
        html = await page(client, state="pending", kind="email.welcome")
        assert "Cancel all 2" in html
        rest = await post(client, "cancel", form_fields(html, "/ops/jobs/cancel", job_id=None))
        assert rest.headers["location"].endswith("done=cancelled&count=2")
        # A running job belongs to its worker; a cancelled one cannot be retried.
        fields = form_fields(html, "/ops/jobs/cancel", job_id=None)
        for action, job_id in (("cancel", running), ("retry", running), ("retry", pending[0])):
            refused = await post(client, action, {**fields, "job_id": str(job_id)})
            assert refused.headers["location"].endswith("count=0&job=" + str(job_id))
        shown = await client.get(refused.headers["location"])
        assert "is no longer in a state that allows it" in shown.text

    found = await statuses(engine)
    assert [found[i] for i in pending] == ["cancelled"] * 3 and found[running] == "running"
    cancelled = await audit_rows(engine, "job.cancelled")
    assert [c["job_id"] for c in cancelled] == pending
    assert "filter" not in cancelled[0]["details"] and "filter" in cancelled[1]["details"]
    assert await audit_rows(engine, "job.retried") == []

    context = AppContext.build(settings)  # a worker, with everything due
    try:
        await context.runner.drain()
    finally:
        await context.close()
    after = await statuses(engine)
    assert [after[i] for i in pending] == ["cancelled"] * 3
    assert await mailhog.messages() == []


@pytest.mark.parametrize(
    "token",
    [pytest.param(None, id="no-token"), pytest.param("forged", id="bad-token"), "no-cookie"],
)
async def test_an_action_without_a_valid_csrf_token_is_refused_and_changes_nothing(
    settings: Settings, engine: AsyncEngine, token: str | None
) -> None:
    ids = await seed_jobs(engine)
    before = await statuses(engine)
    async with operator(settings, job_worker_enabled=False) as client:
        html = await page(client, state="failed")
        for action in ("retry", "cancel"):
            fields = form_fields(html, f"/ops/jobs/{action}", job_id=ids["failed"][0])
            if token is None:
                del fields["csrf_token"]
            elif token == "forged":
                fields["csrf_token"] = fields["csrf_token"][:-2] + "xx"
            else:
                client.cookies.clear()
            response = await post(client, action, fields)
            assert response.status_code == 403
            assert "nothing was done" in response.text
    assert await statuses(engine) == before
    assert await rows(engine, "SELECT id FROM audit_log") == []


async def test_a_filtered_action_needs_a_state_it_applies_to(
    settings: Settings, engine: AsyncEngine
) -> None:
    await seed_jobs(engine)
    before = await statuses(engine)
    async with operator(settings, job_worker_enabled=False) as client:
        fields = form_fields(await page(client, state="failed"), "/ops/jobs/retry", job_id=None)
        for state in ("running", "succeeded", "", "lost"):
            response = await post(client, "retry", {**fields, "state": state})
            assert response.status_code == 422
            assert "nothing was done" in response.text
        garbage = await post(client, "cancel", {**fields, "job_id": "twelve"})
        assert garbage.status_code == 422
    assert await statuses(engine) == before


async def test_the_cli_cancels_with_the_same_audit_rows(
    settings: Settings, engine: AsyncEngine
) -> None:
    ids = await seed_jobs(engine)
    env = {**os.environ, **settings_env(settings)}
    command = [sys.executable, "-m", "backend", "jobs", "cancel", "--status", "pending"]
    result = await asyncio.to_thread(
        subprocess.run, command, env=env, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("2 job(s) cancelled")
    cancelled = await audit_rows(engine, "job.cancelled")
    assert [c["job_id"] for c in cancelled] == ids["pending"]
    assert {c["details"]["by"] for c in cancelled} == {getpass.getuser()}
    again = await asyncio.to_thread(
        subprocess.run, command, env=env, capture_output=True, text=True
    )
    assert again.returncode == 1 and "nothing was cancelled" in again.stderr
