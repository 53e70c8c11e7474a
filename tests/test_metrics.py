"""`GET /metrics` from real uvicorn processes: parsed with prometheus_client's own parser,
its figures moving as registrations, deliveries and SMTP failures happen, added up over
`--workers 2` whichever worker answers, and no label naming anyone."""

import asyncio
import os
import re
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from backend.devstack.app_process import AppProcess
from backend.devstack.smtp_proxy import SmtpProxy
from backend.observability.metrics import REGISTRATION_OUTCOMES
from backend.settings import Settings
from tests.support.helpers import PASSWORD, csrf_token, user_json
from tests.support.jim import JimAPI
from tests.support.logs import ACCESS_BY_PID, pid_log_config
from tests.support.mailhog import MailHog
from tests.support.settings import METRICS_TOKEN

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]
SCRAPER = {"Authorization": f"Bearer {METRICS_TOKEN}"}

_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", re.I)
_SCRAPE_BY_PID = re.compile(r"^(\d+) INFO uvicorn.access: .*GET /metrics", re.M)


def connect(url: str) -> httpx.AsyncClient:
    # A registration is an Argon2 hash: on a machine busy with other work, more than
    # httpx's 5 s default.
    return httpx.AsyncClient(base_url=url, timeout=30)


async def scrape(url: str) -> Samples:
    """One scrape on a fresh connection (so that `--workers` spreads them), parsed."""
    async with connect(url) as client:
        response = await client.get("/metrics", headers=SCRAPER)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "text/plain; version=0.0.4; charset=utf-8"
    samples: Samples = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    _assert_labels_name_no_one(samples)
    return samples


def value(samples: Samples, name: str, **labels: str) -> float | None:
    return samples.get((f"welcome_mail_{name}", frozenset(labels.items())))


def _assert_labels_name_no_one(samples: Samples) -> None:
    for name, labels in samples:
        for label, label_value in labels:
            where = f"{name}{{{label}={label_value!r}}}"
            assert "@" not in label_value, f"an address in a label: {where}"
            assert not _UUID.search(label_value), f"an id in a label: {where}"


async def scrape_until(
    url: str, condition: Callable[[Samples], bool], *, within: float = 20.0
) -> Samples:
    """Scrape until the figures show `condition` (the job figures are cached a few seconds)."""
    deadline = time.monotonic() + within
    while True:
        samples = await scrape(url)
        if condition(samples):
            return samples
        assert time.monotonic() < deadline, f"the figures never showed it: {samples}"
        await asyncio.sleep(0.25)


async def register_by_form(client: httpx.AsyncClient, username: str, **fields: str) -> int:
    page = await client.get("/register")
    form = {
        "username": username,
        "email": f"{username}@example.com",
        "password": PASSWORD,
        "csrf_token": csrf_token(page.text),
        **fields,
    }
    return (await client.post("/register", data=form)).status_code


async def test_metrics_move_with_registrations_and_deliveries(
    settings: Settings, mailhog: MailHog
) -> None:
    with AppProcess(settings.model_copy(update={"api_docs_enabled": True})) as app:
        before = await scrape(app.url)
        assert value(before, "jobs_read_up") == 1
        for channel in ("api", "form"):
            for outcome in REGISTRATION_OUTCOMES:
                assert value(before, "registrations_total", channel=channel, outcome=outcome) == 0
        assert value(before, "relay_state", state="available") == 1
        assert value(before, "relay_state", state="unavailable") == 0
        assert value(before, "password_hashes", state="running") == 0
        assert value(before, "password_hashes", state="waiting") == 0
        for kind in ("email.welcome", "audit.write"):  # the handlers' kinds, at 0
            for state in ("pending", "running", "failed"):
                assert value(before, "jobs", kind=kind, state=state) == 0

        async with connect(app.url) as client:
            # Not in the API's document: Schemathesis fuzzes what is there.
            assert "/metrics" not in (await client.get("/openapi.json")).json()["paths"]
            assert (await client.post("/api/register", json=user_json("ada"))).status_code == 201
            assert (await client.post("/api/register", json=user_json("ada"))).status_code == 409
            short = user_json("bob", password="short")
            assert (await client.post("/api/register", json=short)).status_code == 422
            assert await register_by_form(client, "grace") == 303
            assert await register_by_form(client, "grace2", email="not an address") == 422
            assert await register_by_form(client, "grace3", csrf_token="forged") == 403
        assert len(await mailhog.wait_for(2)) == 2

        def delivered(samples: Samples) -> bool:
            finished = value(
                samples, "jobs_finished_total", kind="audit.write", outcome="succeeded"
            )
            return finished == 2

        after = await scrape_until(app.url, delivered)

    expected = {("api", "created"): 1, ("api", "conflict"): 1, ("api", "invalid"): 1}
    expected |= {("form", "created"): 1, ("form", "invalid"): 1, ("form", "csrf_refused"): 1}
    for channel in ("api", "form"):
        for outcome in REGISTRATION_OUTCOMES:
            counted = value(after, "registrations_total", channel=channel, outcome=outcome)
            assert counted == expected.get((channel, outcome), 0), (channel, outcome)

    assert value(after, "email_delivery_seconds_count", kind="email.welcome") == 2
    assert 0 < (value(after, "email_delivery_seconds_sum", kind="email.welcome") or 0) < 20
    assert value(after, "email_delivery_seconds_bucket", kind="email.welcome", le="+Inf") == 2
    for state in ("pending", "running", "failed"):
        assert value(after, "jobs", kind="email.welcome", state=state) == 0
    assert value(after, "jobs_finished_total", kind="email.welcome", outcome="succeeded") == 2
    assert value(after, "jobs_finished_total", kind="email.welcome", outcome="retried") is None
    assert value(after, "jobs_oldest_due_age_seconds", kind="email.welcome") == 0
    for fault in ("relay_unavailable", "message_refused", "unexpected"):
        assert value(after, "smtp_failures_total", fault=fault, operation="send") == 0


async def test_a_refused_recipient_is_counted_and_so_are_the_emails_it_then_misses(
    settings: Settings, mailhog: MailHog, jim: JimAPI
) -> None:
    # MailHog's Jim, as on a real MailHog: every recipient refused with 550.
    await jim.on(RejectRecipientChance=1)
    with AppProcess(settings) as app:
        async with connect(app.url) as client:
            assert (await client.post("/api/register", json=user_json("ada"))).status_code == 201

            def parked(samples: Samples) -> bool:
                return value(samples, "jobs", kind="email.welcome", state="failed") == 1

            samples = await scrape_until(app.url, parked)
            # The address is suppressed now: a resent link is not even attempted.
            resend = {"email": "ada@example.com"}
            assert (await client.post("/api/verification/resend", json=resend)).status_code == 202

            def suppressed(samples: Samples) -> bool:
                return value(samples, "emails_suppressed_total", kind="email.verification") == 1

            after = await scrape_until(app.url, suppressed)
    assert value(samples, "smtp_failures_total", fault="recipient_refused", operation="send") == 1
    assert value(samples, "smtp_failures_total", fault="message_refused", operation="send") == 0
    assert value(samples, "smtp_failures_total", fault="relay_unavailable", operation="send") == 0
    assert value(samples, "email_delivery_seconds_count", kind="email.welcome") is None
    assert value(samples, "relay_state", state="available") == 1  # the message's fault only
    assert value(samples, "jobs_finished_total", kind="email.welcome", outcome="failed") == 1
    assert value(samples, "emails_suppressed_total", kind="email.welcome") == 0
    # No second SMTP exchange: the failures stay at one.
    assert value(after, "smtp_failures_total", fault="recipient_refused", operation="send") == 1
    assert value(after, "jobs_finished_total", kind="email.verification", outcome="failed") == 1
    assert await mailhog.messages() == []


async def test_a_relay_outage_shows_in_the_relay_state_the_failures_and_the_latency(
    settings: Settings, mailhog: MailHog, proxy: SmtpProxy
) -> None:
    through = {"mail_server": "127.0.0.1", "mail_port": proxy.port}
    with AppProcess(settings.model_copy(update=through)) as app:
        proxy.down()
        async with connect(app.url) as client:
            assert (await client.post("/api/register", json=user_json("ada"))).status_code == 201

        def held(samples: Samples) -> bool:
            probes = value(
                samples, "smtp_failures_total", fault="relay_unavailable", operation="probe"
            )
            return (
                value(samples, "relay_state", state="unavailable") == 1
                and (value(samples, "jobs_oldest_due_age_seconds", kind="email.welcome") or 0) > 1
                and (probes or 0) >= 1
            )

        during = await scrape_until(app.url, held)
        assert value(during, "relay_state", state="available") == 0
        assert value(during, "jobs", kind="email.welcome", state="pending") == 1
        # Connection refused twice (one retry at once), then held.
        assert (
            value(during, "smtp_failures_total", fault="relay_unavailable", operation="send") == 2
        )

        proxy.up()
        assert len(await mailhog.wait_for(1)) == 1

        def back(samples: Samples) -> bool:
            return (
                value(samples, "email_delivery_seconds_count", kind="email.welcome") == 1
                and value(samples, "jobs", kind="email.welcome", state="pending") == 0
            )

        after = await scrape_until(app.url, back)
    assert value(after, "relay_state", state="available") == 1
    assert value(after, "relay_state", state="unavailable") == 0
    # Queued before the outage was seen, accepted after it ended: all of it counts (it
    # was held due for more than a second).
    assert (value(after, "email_delivery_seconds_sum", kind="email.welcome") or 0) > 1
    assert value(after, "email_delivery_seconds_bucket", kind="email.welcome", le="1.0") == 0


@pytest.mark.timeout(180)
async def test_workers_add_up_whichever_answers(
    settings: Settings, engine: AsyncEngine, mailhog: MailHog, tmp_path: Path
) -> None:
    app = AppProcess(
        settings,
        workers=2,
        uvicorn_args=["--log-config", str(pid_log_config(tmp_path / "log.json"))],
    )
    # Three parked jobs, which every worker reads from the same table (before any worker
    # reads it: each keeps what it read for a few seconds).
    async with engine.begin() as connection:
        await connection.execute(
            text(
                "INSERT INTO jobs (kind, payload, status) "
                "SELECT 'email.welcome', '{}', 'failed' FROM generate_series(1, 3)"
            )
        )
    with app:
        await _until(lambda: app.log().count("Application startup complete") == 2)
        created = 0
        # Fresh connections, which the kernel hands to whichever worker accepts, until
        # both have registered someone.
        while len(set(ACCESS_BY_PID.findall(app.log()))) < 2 or created < 6:
            assert created < 60, "one worker answered every registration"
            async with connect(app.url) as client:
                name = f"user{created}"
                response = await client.post("/api/register", json=user_json(name))
            assert response.status_code == 201, response.text
            created += 1
        assert len(await mailhog.wait_for(created)) == created

        def all_delivered(samples: Samples) -> bool:
            finished = value(
                samples, "jobs_finished_total", kind="audit.write", outcome="succeeded"
            )
            return finished == created

        await scrape_until(app.url, all_delivered)
        # Scrapes until both workers have answered some; every one tells the same totals.
        scrapes = 0
        while len(set(_SCRAPE_BY_PID.findall(app.log()))) < 2 or scrapes < 6:
            assert scrapes < 60, "one worker answered every scrape"
            samples = await scrape(app.url)
            scrapes += 1
            assert value(samples, "registrations_total", channel="api", outcome="created") == (
                created
            )
            assert value(samples, "email_delivery_seconds_count", kind="email.welcome") == (created)
            # Read from the database, not summed over the workers.
            assert value(samples, "jobs", kind="email.welcome", state="failed") == 3
            assert value(samples, "relay_state", state="available") == 2  # one per worker

        # A worker dies; uvicorn starts another. What it counted stays counted, its view
        # of the relay goes with it.
        served = sorted(set(ACCESS_BY_PID.findall(app.log())))
        os.kill(int(served[0]), 9)
        await _until(lambda: app.log().count("Application startup complete") == 3)
        for _ in range(6):
            samples = await scrape(app.url)
            assert value(samples, "registrations_total", channel="api", outcome="created") == (
                created
            )
            assert value(samples, "relay_state", state="available") == 2


async def test_two_servers_on_one_machine_count_apart(settings: Settings) -> None:
    with AppProcess(settings) as first, AppProcess(settings) as second:
        async with connect(first.url) as client:
            assert (await client.post("/api/register", json=user_json("ada"))).status_code == 201
        ours = await scrape(first.url)
        theirs = await scrape(second.url)
    assert value(ours, "registrations_total", channel="api", outcome="created") == 1
    assert value(theirs, "registrations_total", channel="api", outcome="created") == 0


async def test_a_directory_given_by_the_operator_is_used(
    settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    given = tmp_path / "metrics"
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(given))
    with AppProcess(settings) as app:
        async with connect(app.url) as client:
            assert (await client.post("/api/register", json=user_json("ada"))).status_code == 201
        samples = await scrape(app.url)
    assert value(samples, "registrations_total", channel="api", outcome="created") == 1
    assert any(path.name.startswith("counter_") for path in given.iterdir())


async def test_without_the_database_the_page_still_answers(settings: Settings) -> None:
    gone = settings.model_copy(
        update={"database_url": "postgresql+asyncpg://nobody@127.0.0.1:9/none"}
    )
    app = AppProcess(gone).start(ready_path="/livez")  # conftest stops it
    samples = await scrape(app.url)
    assert value(samples, "jobs_read_up") == 0
    assert not any(name == "welcome_mail_jobs" for name, _ in samples)
    assert value(samples, "registrations_total", channel="api", outcome="created") == 0


async def test_metrics_can_be_turned_off(settings: Settings) -> None:
    with AppProcess(settings.model_copy(update={"metrics_enabled": False})) as app:
        async with connect(app.url) as client:
            assert (await client.get("/metrics")).status_code == 404


async def _until(condition: Callable[[], bool], within: float = 30) -> None:
    deadline = time.monotonic() + within
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.1)
