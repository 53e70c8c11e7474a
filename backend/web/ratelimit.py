"""Per-client limit on registration attempts (REGISTER_RATE_LIMIT, e.g. "10/minute").

Counted in this process's memory with a moving window: enough to blunt a script
hammering one server; with several replicas each counts on its own.
"""

import math
import time

from fastapi import Request
from limits import parse
from limits.storage import MemoryStorage
from limits.strategies import MovingWindowRateLimiter


class RegistrationLimiter:
    def __init__(self, limit: str) -> None:
        self._item = parse(limit) if limit else None
        self._limiter = MovingWindowRateLimiter(MemoryStorage())

    def retry_after(self, request: Request) -> int | None:
        """Count this attempt; None when allowed, else seconds until the next is."""
        if self._item is None:
            return None
        client = request.client.host if request.client else "unknown"
        if self._limiter.hit(self._item, "register", client):
            return None
        reset_at = self._limiter.get_window_stats(self._item, "register", client).reset_time
        return max(1, math.ceil(reset_at - time.time()))
