"""Retry and cancel on the operator page, for one job or a filtered set: what runs (or
never does) afterwards, CSRF, the refusals, and the audit rows; the CLI's cancel too.

The app runs in-process with its lifespan: each response returns once the background
work it started is done, so a retried email is in the inbox by then.
"""

import asyncio
import getpass
import os
import subprocess
import sys

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from backend.context import AppContext
from backend.devstack.app_process import settings_env
from backend.devstack.sample_jobs import seed_jobs
from backend.settings import Settings
from tests.support.durability import queue_registrations
from tests.support.helpers import register_via_api, rows
from tests.support.jim import JimAPI
from tests.support.mailhog import MailHog
from tests.support.ops import form_fields
from tests.support.ops_client import audit_rows, operator, page, post, statuses
from tests.test_relay_faults import fault

# A refusal of the message, not of the address (which would be suppressed: a retry of its
# job would then end suppressed too, until the address is lifted; tests/test_suppression.py).
REFUSE_MESSAGE = fault("data", "552 5.3.4 Message size exceeds fixed limit")


async def test_retrying_a_failed_email_delivers_it_and_is_audited(
    settings: Settings, engine: AsyncEngine, mailhog: MailHog, jim: JimAPI
) -> None:
    await jim.faults({**REFUSE_MESSAGE, "Match": "ada@"})
    async with operator(settings) as client:
        await register_via_api(client, "ada")
        [job] = await rows(
            engine, "SELECT id, status, last_error FROM jobs WHERE kind = 'email.welcome'"
        )
        assert job["status"] == "failed" and "552" in job["last_error"]
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
    await jim.faults(REFUSE_MESSAGE)
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
