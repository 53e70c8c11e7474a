"""The pace at which this process hands messages to the relay (MAIL_SEND_RATE).

Providers cap sending (SES starts at 14 messages a second); going faster only earns
throttling answers. One limiter per process, shared by all its lanes, counted with a
moving window so a burst cannot exceed the cap at any instant.
"""

import asyncio
import time

from limits import parse
from limits.storage import MemoryStorage
from limits.strategies import MovingWindowRateLimiter


class SendPace:
    def __init__(self, rate: str) -> None:
        self._item = parse(rate) if rate else None
        self._limiter = MovingWindowRateLimiter(MemoryStorage())

    async def wait_turn(self) -> None:
        """Return when one more message may be sent (at once when there is no cap)."""
        if self._item is None:
            return
        while not self._limiter.hit(self._item, "mail"):
            reset_at = self._limiter.get_window_stats(self._item, "mail").reset_time
            await asyncio.sleep(max(0.001, reset_at - time.time()))
