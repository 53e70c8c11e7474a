"""MAIL_SEND_RATE shared by every process and replica: send slots handed out by Postgres.

A provider's limit is per account (SES: 14 a second), not per process. One row per relay
in `mail_send_slots` holds the next free moment; a process reserves a small block of
slots with one upsert, which moves that moment on by the block's length, and its lanes
each wait for one slot. The database's clock places the slots, so the servers' clocks
need not agree: the statement answers how far ahead of its own now() the block ends, and
that is read as if the database had answered the instant the answer arrived, the latest
it could have, so a slot is never earlier here than there.

A block holds no more slots than lanes are waiting, and at most a quarter of a second's
worth: the processes interleave, and one that stops leaves little unused.

A slot missed by more than half an interval (an event loop late to wake its lane) is
given up and another reserved: sent that late, it would crowd the next slot, another
process's. A lane that misses three in a row sends on the third all the same, so an
overloaded process still makes progress.

When the database does not answer (an error, or nothing within `timeout_seconds`), the
process keeps the rate on its own (`SendPace`) for `fallback_seconds`, then asks again:
while it lasts, N processes may hand the relay up to N times the rate (the messages they
had already claimed; new claims need the database too).
"""

import asyncio
import logging
import math
import time
from collections import deque
from datetime import datetime

from limits import parse
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from backend.mail.pace import SendPace

log = logging.getLogger(__name__)

# One round trip: the block starts at the row's next free moment, or now if that has
# passed; answers where the block ends, and the database's clock when it was taken.
_RESERVE = text(
    """
    WITH clock AS (SELECT clock_timestamp() AS now)
    INSERT INTO mail_send_slots AS s (relay, next_slot)
    SELECT CAST(:relay AS text), clock.now + make_interval(secs => CAST(:block AS float8))
    FROM clock
    ON CONFLICT (relay) DO UPDATE
    SET next_slot = greatest(s.next_slot + make_interval(secs => CAST(:block AS float8)),
                             excluded.next_slot)
    RETURNING s.next_slot AS ends, (SELECT now FROM clock) AS now
    """
)

# Late wakes given up in a row before a lane sends on a late slot all the same.
_GIVE_UP_AT_MOST = 2


async def reserve(
    session: AsyncSession, *, relay: str, seconds: float
) -> tuple[datetime, datetime]:
    """Take the next `seconds` of the relay's send time: (where they end, the database's
    clock as it took them). They start `seconds` before the end."""
    row = (await session.execute(_RESERVE, {"relay": relay, "block": seconds})).one()
    return row.ends, row.now


class SharedPace:
    def __init__(
        self,
        rate: str,
        *,
        relay: str,
        sessionmaker: async_sessionmaker[AsyncSession],
        timeout_seconds: float = 2.0,
        fallback_seconds: float = 5.0,
    ) -> None:
        item = parse(rate)
        self._interval = item.get_expiry() / item.amount
        self._block_most = max(1, math.floor(0.25 / self._interval))
        self._late = self._interval / 2
        self._relay = relay
        self._sessionmaker = sessionmaker
        self._timeout = timeout_seconds
        self._fallback_seconds = fallback_seconds
        self._local = SendPace(rate)
        self._local_until = 0.0
        self._slots: deque[float] = deque()
        self._wanting = 0
        self._reserving: asyncio.Task[None] | None = None

    async def wait_turn(self) -> None:
        """Return when one more message may be sent, by every process's count."""
        given_up = 0
        while True:
            slot = await self._slot()
            if slot is None:
                await self._local.wait_turn()
                return
            delay = slot - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            if time.monotonic() - slot <= self._late or given_up >= _GIVE_UP_AT_MOST:
                return
            given_up += 1

    async def close(self) -> None:
        if self._reserving is not None:
            self._reserving.cancel()
            await asyncio.gather(self._reserving, return_exceptions=True)

    async def _slot(self) -> float | None:
        """This lane's slot, in this process's monotonic time; None: keep the local pace."""
        self._wanting += 1
        try:
            while True:
                now = time.monotonic()
                while self._slots and self._slots[0] < now - self._late:
                    self._slots.popleft()  # nobody here wanted it in time
                if self._slots:
                    return self._slots.popleft()
                if now < self._local_until:
                    return None
                # One reservation in flight per process; the lanes waiting share it.
                if self._reserving is None or self._reserving.done():
                    self._reserving = asyncio.create_task(self._reserve())
                # Shielded: a lane stopped meanwhile leaves the block to the others.
                await asyncio.shield(self._reserving)
        finally:
            self._wanting -= 1

    async def _reserve(self) -> None:
        count = max(1, min(self._block_most, self._wanting))
        block = count * self._interval
        try:
            async with asyncio.timeout(self._timeout):
                async with self._sessionmaker() as session, session.begin():
                    ends, now = await reserve(session, relay=self._relay, seconds=block)
        except Exception as exc:
            if not self._local_until:
                log.warning(
                    "the shared send rate is out of reach (%s): this process keeps "
                    "MAIL_SEND_RATE on its own for now",
                    type(exc).__name__,
                )
            self._local_until = time.monotonic() + self._fallback_seconds
            return
        if self._local_until:
            log.warning("the shared send rate is back: MAIL_SEND_RATE counts every process")
            self._local_until = 0.0
        # As if the database had answered the instant its answer arrived: never early.
        first = time.monotonic() + (ends - now).total_seconds() - block
        self._slots.extend(first + i * self._interval for i in range(count))
