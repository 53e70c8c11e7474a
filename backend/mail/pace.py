"""The pace at which this process hands messages to the relay (MAIL_SEND_RATE), on its own.

With a database, the pace is shared by every process instead (`shared_pace.py`), which
falls back to this one while the database does not answer.

Providers cap sending (SES starts at 14 messages a second) and answer a burst over the
cap with throttling. The cap is met by spacing messages evenly, one every
period/amount ("14/second": one every 71 ms), shared by all lanes of the process: a
window-counting limiter would let a whole second's worth out at once, and the relay,
which counts arrivals, would see two such bursts inside one of its seconds.
"""

import asyncio
import time

from limits import parse


class SendPace:
    def __init__(self, rate: str) -> None:
        item = parse(rate) if rate else None
        self._interval = item.get_expiry() / item.amount if item else 0.0
        self._next_slot = 0.0

    async def wait_turn(self) -> None:
        """Return when one more message may be sent (at once when there is no cap)."""
        if not self._interval:
            return
        now = time.monotonic()
        # No await between reading and taking the slot: lanes never share one.
        slot = max(now, self._next_slot)
        self._next_slot = slot + self._interval
        if slot > now:
            await asyncio.sleep(slot - now)

    async def close(self) -> None:
        """Nothing to stop (the shared pace has a reservation in flight)."""
