"""Rate limits counted in one of the `limits` package's storages (RATE_LIMIT_STORAGE_URL).

For a deployment that already runs Redis (or Valkey, MongoDB) and would rather keep the
counting off its database. Only storages with a moving window are accepted, so the
limits mean the same as with Postgres. `memory://` works too, but counts per process.
The client library is the storage's own (`pip install 'welcome-mail[redis]'` for Redis).
"""

import math
import time

from limits import RateLimitItem
from limits.aio.storage import MovingWindowSupport, Storage
from limits.aio.strategies import MovingWindowRateLimiter
from limits.errors import StorageError
from limits.storage import storage_from_string

from backend.ratelimits.counter import RateLimitStorageUnavailable

# A forced hit is an acquisition under a limit nothing reaches.
_NO_LIMIT = 2**31 - 1
_NO_MOVING_WINDOW = (
    "RATE_LIMIT_STORAGE_URL: the {scheme} storage has no moving window; "
    "use Redis, Valkey or MongoDB, or leave it empty for Postgres"
)


class LimitsCounter:
    def __init__(self, url: str) -> None:
        # `redis://...` as people write it; `limits` names its asyncio storages `async+...`.
        uri = url if url.startswith("async+") else f"async+{url}"
        scheme = uri.partition("://")[0]
        # Checked before the storage is made: that needs its client library installed.
        if "memcached" in scheme:
            raise ValueError(_NO_MOVING_WINDOW.format(scheme=scheme))
        storage = storage_from_string(uri, wrap_exceptions=True)
        if not isinstance(storage, Storage) or not isinstance(storage, MovingWindowSupport):
            raise ValueError(_NO_MOVING_WINDOW.format(scheme=scheme))
        self._storage = storage
        self._moving: MovingWindowSupport = storage
        self._limiter = MovingWindowRateLimiter(storage)

    async def hit(
        self, *, name: str, key: str, item: RateLimitItem, cost: int, force: bool
    ) -> int | None:
        try:
            if force:
                await self._moving.acquire_entry(
                    item.key_for(name, key), _NO_LIMIT, item.get_expiry(), cost
                )
                return None
            if await self._limiter.hit(item, name, key, cost=cost):
                return None
            reset_at = (await self._limiter.get_window_stats(item, name, key)).reset_time
        except StorageError as exc:
            raise RateLimitStorageUnavailable(f"rate-limit storage: {exc.storage_error!r}") from exc
        return max(1, math.ceil(reset_at - time.time()))

    async def reset(self, *, name: str, key: str, item: RateLimitItem) -> None:
        try:
            await self._storage.clear(item.key_for(name, key))
        except StorageError as exc:
            raise RateLimitStorageUnavailable(f"rate-limit storage: {exc.storage_error!r}") from exc

    async def close(self) -> None:
        """The `limits` storages keep no resource that needs closing by hand."""
