"""The relay's state in `relay_status`, as the processes share it (backend/mail/relay.py).

Each change of state is written with the database's clock. `since` stays put when the
state does not change (a second process finding the relay down keeps the first one's
time), and finding it down counts as a probe (`probed_at`). A process takes the probe
turn with a conditional update: only when nobody probed for `probe_seconds`. Every call
is bounded in time and answers None when the database does not: the process then keeps
its own view and probes on its own.
"""

import asyncio
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

TIMEOUT_SECONDS = 2.0

_WRITE = text(
    """
    INSERT INTO relay_status AS r (relay, state, since, last_error, updated_at, probed_at)
    VALUES (CAST(:relay AS text), CAST(:state AS text), now(), :error, now(),
            CASE WHEN CAST(:state AS text) = 'available' THEN NULL ELSE now() END)
    ON CONFLICT (relay) DO UPDATE
    SET since = CASE WHEN r.state = excluded.state THEN r.since ELSE excluded.since END,
        state = excluded.state,
        last_error = excluded.last_error,
        updated_at = now(),
        probed_at = coalesce(excluded.probed_at, r.probed_at)
    RETURNING since
    """
)

# The row as it was, and whether this process now holds the probe turn.
_LOOK = text(
    """
    WITH turn AS (
        UPDATE relay_status SET probed_at = now()
        WHERE relay = CAST(:relay AS text) AND CAST(:take_turn AS boolean)
          AND state <> 'available'
          AND (probed_at IS NULL
               OR probed_at <= now() - make_interval(secs => CAST(:every AS float8)))
        RETURNING relay
    )
    SELECT state, since, last_error, EXISTS (SELECT FROM turn) AS my_turn
    FROM relay_status WHERE relay = CAST(:relay AS text)
    """
)


@dataclass(frozen=True)
class Seen:
    state: str
    since: datetime
    last_error: str | None
    my_turn: bool


async def write(
    sessionmaker: async_sessionmaker[AsyncSession], *, relay: str, state: str, error: str | None
) -> datetime | None:
    """Record a change of state; its `since` by the database's clock (None: not written)."""
    try:
        async with asyncio.timeout(TIMEOUT_SECONDS):
            async with sessionmaker() as session, session.begin():
                params = {"relay": relay, "state": state, "error": error}
                since: datetime = (await session.execute(_WRITE, params)).scalar_one()
                return since
    except Exception:
        return None


async def look(
    sessionmaker: async_sessionmaker[AsyncSession],
    *,
    relay: str,
    take_turn: bool,
    every_seconds: float,
) -> Seen | None:
    """The shared state (None: no row, or no answer), taking the probe turn if asked and free."""
    params = {"relay": relay, "take_turn": take_turn, "every": every_seconds}
    try:
        async with asyncio.timeout(TIMEOUT_SECONDS):
            async with sessionmaker() as session, session.begin():
                row = (await session.execute(_LOOK, params)).one_or_none()
    except Exception:
        return None
    if row is None:
        return None
    return Seen(state=row.state, since=row.since, last_error=row.last_error, my_turn=row.my_turn)
