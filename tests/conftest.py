"""Shared fixtures: a real Postgres, a real SMTP server with the MailHog API, the app.

Self-contained by default (embedded Postgres, built-in inbox). Point the suite at
outside services with TEST_DATABASE_URL, and TEST_SMTP_HOST/TEST_SMTP_PORT/TEST_MAILHOG_URL.

`make test` runs the suite on pytest-xdist workers (`-n auto`). The session fixtures make
each worker its own world: its own Postgres (or its own database on TEST_DATABASE_URL)
and its own inbox. An outside inbox is shared, so with TEST_MAILHOG_URL it runs serially.
"""

import os
from collections.abc import AsyncIterator, Generator, Iterator

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from backend.devstack.app_process import LOG_TAIL_LINES, AppProcess
from backend.devstack.postgres import (
    create_database,
    drop_database,
    run_alembic,
    throwaway_postgres,
)
from backend.devstack.smtp_proxy import SmtpProxy
from backend.settings import Settings
from tests.support.app_client import app_client
from tests.support.jim import JimAPI, jim_api
from tests.support.mailhog import MailEndpoints, MailHog
from tests.support.settings import make_settings

# The browser fixtures (browser, context, app, shots), shared by the browser test modules.
pytest_plugins = ["tests.support.browser"]


def pytest_xdist_auto_num_workers(config: pytest.Config) -> int:
    """How many workers `-n auto` starts: TEST_WORKERS, else twice the CPUs (at most 8).

    The tests mostly wait (on processes, leases, timeouts) rather than compute, so more
    workers than CPUs keeps them overlapping. An outside mail catcher (TEST_MAILHOG_URL)
    is one inbox that every test clears and counts: then 0, no workers, one process.
    """
    if os.environ.get("TEST_MAILHOG_URL"):
        return 0
    if workers := os.environ.get("TEST_WORKERS"):
        return int(workers)
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return min(8, 2 * (cpus or 1))


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests marked `slow` (they mostly wait: an outage, a drain) each open a different
    worker's share, so the workers run everything else beside them, not after them.

    xdist hands each worker a contiguous share of this list; the order must be the same
    in every worker, and it is (it depends only on the collection and the worker count).
    """
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    slow = [item for item in items if item.get_closest_marker("slow")]
    rest = [item for item in items if not item.get_closest_marker("slow")]
    share = -(-len(items) // workers)  # ceiling
    shares: list[list[pytest.Item]] = [slow[i::workers] for i in range(workers)]
    for part in shares:
        while len(part) < share and rest:
            part.append(rest.pop(0))
    items[:] = [item for part in shares for item in part] + rest


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "slow: mostly waits; scheduled first under xdist")
    explicit_workers = getattr(config.option, "numprocesses", None)
    if os.environ.get("TEST_MAILHOG_URL") and explicit_workers:
        raise pytest.UsageError(
            "TEST_MAILHOG_URL is one inbox shared by all tests: run serially (-n 0 or -n auto)"
        )


_KEEP_LOGS = pytest.StashKey[bool]()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """A failed test shows the tail of each uvicorn log it made, and keeps the files;
    a passed test's logs are deleted. No uvicorn outlives its test (a test stopped by
    its timeout never reaches the end of its `with AppProcess(...)` block)."""
    report = yield
    apps = AppProcess.instances
    if report.failed:
        for app in apps:
            title = f"uvicorn on port {app.port}: last {LOG_TAIL_LINES} lines of {app.log_path}"
            report.sections.append((title, app.log_tail()))
        item.stash[_KEEP_LOGS] = True
    if report.when == "teardown":
        for app in apps:
            app.stop()
            if not item.stash.get(_KEEP_LOGS, False):
                app.delete_log()
        apps.clear()
    return report


@pytest.fixture(scope="session")
def postgres_server_url() -> Iterator[str]:
    url = os.environ.get("TEST_DATABASE_URL")
    if url:
        yield url
        return
    with throwaway_postgres() as url:
        yield url


@pytest.fixture(scope="session")
async def database_url(postgres_server_url: str) -> AsyncIterator[str]:
    """One database for the session, its schema made by the Alembic migrations."""
    url = await create_database(postgres_server_url)
    await run_alembic(url, "upgrade", "head")
    yield url
    await drop_database(url)


@pytest.fixture(scope="session")
def mail_endpoints() -> Iterator[MailEndpoints]:
    api_url = os.environ.get("TEST_MAILHOG_URL")
    if api_url:
        yield MailEndpoints(
            smtp_host=os.environ.get("TEST_SMTP_HOST", "127.0.0.1"),
            smtp_port=int(os.environ.get("TEST_SMTP_PORT", "1025")),
            api_url=api_url,
        )
        return
    from backend.devstack.inbox import DevInbox

    with DevInbox(smtp_port=0, http_port=0) as inbox:
        yield MailEndpoints("127.0.0.1", inbox.smtp_port, inbox.api_url)


@pytest.fixture
def proxy(mail_endpoints: MailEndpoints) -> Iterator[SmtpProxy]:
    """An SMTP proxy in front of the mail server that tests can take down or pause."""
    with SmtpProxy(mail_endpoints.smtp_host, mail_endpoints.smtp_port) as proxy:
        yield proxy


@pytest.fixture
async def jim(mail_endpoints: MailEndpoints) -> AsyncIterator[JimAPI]:
    """The mail server's chaos monkey, off again however the test ends."""
    async with jim_api(mail_endpoints) as api:
        yield api


@pytest.fixture(scope="session")
def mailhog(mail_endpoints: MailEndpoints) -> MailHog:
    return MailHog(mail_endpoints.api_url)


@pytest.fixture(scope="session")
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_async_engine(database_url)
    yield engine
    await engine.dispose()


@pytest.fixture
async def clean(engine: AsyncEngine, mailhog: MailHog) -> None:
    """Every test starts with empty tables and an empty inbox."""
    async with engine.begin() as connection:
        await connection.execute(
            text(
                "TRUNCATE users, audit_log, jobs, relay_status, rate_limit_counters, "
                "mail_send_slots, email_suppressions RESTART IDENTITY CASCADE"
            )
        )
    await mailhog.clear()


@pytest.fixture
def settings(database_url: str, mail_endpoints: MailEndpoints, clean: None) -> Settings:
    return make_settings(database_url, mail_endpoints)


@pytest.fixture
async def client(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """The app in-process with its lifespan, for the simple tests: each response returns
    only once the background work in flight (the welcome email, the audit rows) has run,
    so the test can read the outcome at once.

    Tests about asynchrony, which must see the response before that work, open their own
    with `app_client(settings, wait_for_background=False)`.
    """
    async with app_client(settings) as client:
        yield client
