"""Shared fixtures: a real Postgres, a real SMTP server with the MailHog API, the app.

Self-contained by default (embedded Postgres, built-in inbox). Point the suite at
outside services with TEST_DATABASE_URL, and TEST_SMTP_HOST/TEST_SMTP_PORT/TEST_MAILHOG_URL.
"""

import os
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from backend.main import create_app
from backend.settings import Settings
from tests.support.database import create_database, drop_database, embedded_postgres, run_alembic
from tests.support.mailhog import MailHog
from tests.support.smtp_proxy import SmtpProxy

TEST_SECRET = "test-secret-key-not-for-production"


@dataclass(frozen=True)
class MailEndpoints:
    smtp_host: str
    smtp_port: int
    api_url: str


@pytest.fixture(scope="session")
def postgres_server_url() -> Iterator[str]:
    url = os.environ.get("TEST_DATABASE_URL")
    if url:
        yield url
        return
    with embedded_postgres() as url:
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
        await connection.execute(text("TRUNCATE users, audit_log, jobs, relay_status RESTART IDENTITY CASCADE"))
    await mailhog.clear()


def make_settings(database_url: str, mail: MailEndpoints, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "environment": "test",
        "database_url": database_url,
        "mail_server": mail.smtp_host,
        "mail_port": mail.smtp_port,
        "mail_timeout_seconds": 5,
        "app_base_url": "http://testserver",
        "secret_key": TEST_SECRET,
        "register_rate_limit": "",  # tests register many users from one client
        "job_poll_seconds": 0.2,
        "job_retry_base_seconds": 0.2,
        "job_retry_cap_seconds": 1.0,
        "mail_relay_probe_seconds": 0.5,
    }
    values.update(overrides)
    return Settings(_env_file=None, **values)


@pytest.fixture
def settings(database_url: str, mail_endpoints: MailEndpoints, clean: None) -> Settings:
    return make_settings(database_url, mail_endpoints)


@pytest.fixture
async def client(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """The app in-process with its lifespan; responses return once their background work ran."""
    async with app_client(settings) as client:
        yield client


def app_client(settings: Settings, *, base_url: str = "http://testserver") -> "AppClient":
    return AppClient(settings, base_url=base_url)


class AppClient:
    def __init__(self, settings: Settings, *, base_url: str = "http://testserver") -> None:
        self.base_url = base_url
        self.app = create_app(settings)
        self._lifespan = self.app.router.lifespan_context(self.app)

    async def __aenter__(self) -> httpx.AsyncClient:
        await self._lifespan.__aenter__()
        self._client = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=self.app),
            base_url=self.base_url,
            event_hooks={"response": [self._background_work_done]},
        )
        return self._client

    async def _background_work_done(self, response: httpx.Response) -> None:
        # The app answers before its background work is done (as in production); tests
        # read the outcome, so they wait for it here.
        await self.app.state.context.runner.wait_idle()

    async def __aexit__(self, *exc: object) -> None:
        await self._client.aclose()
        await self._lifespan.__aexit__(None, None, None)
