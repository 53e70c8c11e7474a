"""Rate limits counted in Postgres: one statement per hit, shared by every process.

Each (limit, key) row holds the timestamps of its hits in the last period, oldest first:
the same moving window as `limits`' MovingWindowRateLimiter (at most `amount` hits in any
span of `period`, so no burst of twice the limit across a window boundary). A hit is one
`INSERT ... ON CONFLICT DO UPDATE` that drops the timestamps older than the period and
appends this one only if the rest leave room; the row lock it takes makes concurrent hits
on one key take turns, and the database's clock serves every replica alike.

The statement runs in autocommit on a connection of its own, taken from the app's pool
and given back at once: never inside a caller's transaction, never held while something
else (a password hash) runs. Rows whose last hit left the period are deleted by a sweep
that each process runs at most once a minute, after a hit.
"""

import math
import time
from datetime import datetime, timedelta

from limits import RateLimitItem
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

_HIT = text(
    """
    WITH clock AS (
        SELECT now, now - make_interval(secs => CAST(:period AS float8)) AS since
        FROM (SELECT clock_timestamp() AS now) AS t
    ), counted AS (
        INSERT INTO rate_limit_counters AS c (name, key, hits, expires_at)
        SELECT CAST(:name AS text), CAST(:key AS text),
               array_fill(clock.now, ARRAY[CAST(:cost AS integer)]),
               clock.now + make_interval(secs => CAST(:period AS float8))
        FROM clock
        WHERE CAST(:cost AS integer) <= CAST(:limit AS float8)
        ON CONFLICT (name, key) DO UPDATE
        SET hits = ARRAY(
                SELECT h FROM unnest(c.hits) AS h, clock WHERE h > clock.since ORDER BY h
            ) || excluded.hits,
            expires_at = excluded.expires_at
        WHERE (SELECT count(*) FROM unnest(c.hits) AS h, clock WHERE h > clock.since)
              + CAST(:cost AS integer) <= CAST(:limit AS float8)
        RETURNING 1
    )
    SELECT EXISTS (SELECT FROM counted) AS counted, clock.now,
           (SELECT c.hits FROM rate_limit_counters AS c
            WHERE c.name = CAST(:name AS text) AND c.key = CAST(:key AS text)) AS hits
    FROM clock
    """
)

_RESET = text(
    "DELETE FROM rate_limit_counters WHERE name = CAST(:name AS text) AND key = CAST(:key AS text)"
)
_SWEEP = text("DELETE FROM rate_limit_counters WHERE expires_at < clock_timestamp()")


class PostgresCounter:
    def __init__(self, engine: AsyncEngine, *, sweep_every_seconds: float = 60.0) -> None:
        # Shares the app's pool; autocommit: the hit is its own transaction, one round trip.
        self._engine = engine.execution_options(isolation_level="AUTOCOMMIT")
        self._sweep_every = sweep_every_seconds
        self._next_sweep = 0.0

    async def hit(
        self, *, name: str, key: str, item: RateLimitItem, cost: int, force: bool
    ) -> int | None:
        period = float(item.get_expiry())
        limit = math.inf if force else float(item.amount)
        async with self._engine.connect() as connection:
            row = (
                await connection.execute(
                    _HIT,
                    {"name": name, "key": key, "cost": cost, "period": period, "limit": limit},
                )
            ).one()
            if time.monotonic() >= self._next_sweep:
                self._next_sweep = time.monotonic() + self._sweep_every
                await connection.execute(_SWEEP)
        if row.counted:
            return None
        return wait_seconds(
            hits=row.hits or [], now=row.now, period=period, amount=item.amount, cost=cost
        )

    async def reset(self, *, name: str, key: str, item: RateLimitItem) -> None:
        async with self._engine.connect() as connection:
            await connection.execute(_RESET, {"name": name, "key": key})

    async def sweep(self) -> int:
        """Delete the rows with no hit left in their period; returns how many."""
        async with self._engine.connect() as connection:
            return (await connection.execute(_SWEEP)).rowcount

    async def close(self) -> None:
        """Nothing of its own to close: the engine belongs to the app."""


def wait_seconds(
    *, hits: list[datetime], now: datetime, period: float, amount: int, cost: int
) -> int:
    """Whole seconds until `cost` more hits fit among `hits` (at least 1): until enough
    of the hits in the window have left it that `amount` is not exceeded."""
    live = sorted(h for h in hits if h > now - timedelta(seconds=period))
    must_leave = len(live) + cost - amount
    if cost > amount:
        return math.ceil(period)  # never fits; say "a period" rather than "now"
    if must_leave <= 0:
        return 1  # a concurrent hit took the room and left again: try at once
    leaves_at = live[must_leave - 1] + timedelta(seconds=period)
    return max(1, math.ceil((leaves_at - now).total_seconds()))
