"""The operator page, /ops/jobs: off without OPS_PASSWORD, basic auth and its attempt
limit, and the listing: counts, relay, jobs filtered by state and kind, no payloads.

The app runs in-process with its lifespan (as the form tests do). Retry and cancel are in
tests/test_ops_actions.py.
"""

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from backend.devstack.sample_jobs import PAYLOAD_SECRET, seed_jobs
from backend.settings import Settings
from tests.support.app_client import app_client
from tests.support.helpers import rows
from tests.support.ops import OPS_AUTH, OPS_PASSWORD, table_ids
from tests.support.ops_client import operator, ops_settings, page


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
