"""Alembic environment: async (asyncpg), database from DATABASE_URL.

A caller may pass `config.attributes["database_url"]` (the test suite does) to target
another database without touching the environment.

Online runs hold a Postgres advisory lock (MIGRATION_LOCK_ID) from before Alembic reads
`alembic_version` until the end. A deploy runs `alembic upgrade head` once (compose's
`migrate` service), but whatever runs it several times at once (`make dev` beside it, an
init step in every replica) would otherwise apply the same migration twice.
"""

import asyncio
import logging
from logging.config import fileConfig

from alembic import context
from sqlalchemy import text
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection, create_async_engine
from sqlalchemy.pool import NullPool

from backend import models  # noqa: F401  (registers the tables on the metadata)
from backend.db import MIGRATION_LOCK_ID, Base
from backend.settings import DatabaseSettings

config = context.config
if config.config_file_name is not None and config.attributes.get("configure_logger", True):
    fileConfig(config.config_file_name, disable_existing_loggers=False)

target_metadata = Base.metadata
log = logging.getLogger("alembic.env")


def database_url() -> str:
    url = config.attributes.get("database_url")
    return str(url) if url else DatabaseSettings().database_url


def run_migrations_offline() -> None:
    context.configure(
        url=database_url(),
        target_metadata=target_metadata,
        literal_binds=True,
        dialect_opts={"paramstyle": "named"},
    )
    with context.begin_transaction():
        context.run_migrations()


def do_run_migrations(connection: Connection) -> None:
    context.configure(connection=connection, target_metadata=target_metadata)
    with context.begin_transaction():
        context.run_migrations()


_LOCK_NOT_AVAILABLE = "55P03"  # lock_timeout ran out


async def take_migration_lock(connection: AsyncConnection) -> None:
    """Wait for our turn. A session-level lock: it outlives the transactions Alembic
    commits, and Postgres drops it when the session ends, so a crash never wedges a deploy.

    The wait is taken in short turns (`lock_timeout`), each its own transaction: a
    migration that builds an index CONCURRENTLY waits for every transaction older than
    it, and a waiter's one long transaction would then be a deadlock (seen in
    tests/test_migrations.py)."""
    lock = {"id": MIGRATION_LOCK_ID}
    if not await connection.scalar(text("SELECT pg_try_advisory_lock(:id)"), lock):
        log.info("Another process is migrating this database; waiting for it to finish.")
        while True:
            await connection.rollback()
            await connection.execute(text("SET LOCAL lock_timeout = '200ms'"))
            try:
                await connection.execute(text("SELECT pg_advisory_lock(:id)"), lock)
                break
            except DBAPIError as exc:
                if getattr(exc.orig, "sqlstate", None) != _LOCK_NOT_AVAILABLE:
                    raise
    # End the implicit transaction, so that Alembic begins and commits its own.
    await connection.commit()


async def run_migrations_online() -> None:
    # NullPool: closing the connection ends the session, which releases the lock even
    # when a migration fails (a pool would keep the session, and the lock, alive).
    engine = create_async_engine(database_url(), poolclass=NullPool, hide_parameters=True)
    try:
        async with engine.connect() as connection:
            await take_migration_lock(connection)
            await connection.run_sync(do_run_migrations)
            await connection.execute(
                text("SELECT pg_advisory_unlock(:id)"), {"id": MIGRATION_LOCK_ID}
            )
            await connection.commit()
    finally:
        await engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    asyncio.run(run_migrations_online())
