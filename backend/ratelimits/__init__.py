"""Rate limits shared by every process and replica.

A `Limiter` is one limit in the `limits` notation ("10/minute") over one kind of key; it
hashes each key and asks a `Counter` to count it. The counter is Postgres by default
(`postgres.py`, the database the app already has), or one of the `limits` package's
storages when RATE_LIMIT_STORAGE_URL names one (`storage.py`, e.g. Redis). Both count
a moving window: at most the limit's amount of hits in any span of its period.

This package knows nothing of HTTP or email: web/ turns a request into a client key,
accounts/ turns an email address into a mailbox key.
"""

from sqlalchemy.ext.asyncio import AsyncEngine

from backend.ratelimits.counter import Counter, Limiter, RateLimitStorageUnavailable
from backend.ratelimits.postgres import PostgresCounter

__all__ = ["Counter", "Limiter", "PostgresCounter", "RateLimitStorageUnavailable", "build_counter"]


def build_counter(*, storage_url: str, engine: AsyncEngine) -> Counter:
    """The counter RATE_LIMIT_STORAGE_URL asks for: empty means the app's database."""
    if not storage_url:
        return PostgresCounter(engine)
    # Imported only when asked for: the `limits` storages pull in their own clients.
    from backend.ratelimits.storage import LimitsCounter

    return LimitsCounter(storage_url)
