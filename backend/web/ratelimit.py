"""Per-client limits as the handlers use them: a request in, seconds to wait (or None) out."""

from fastapi import Request

from backend.ratelimits import Limiter
from backend.web.client_key import Networks, client_key


class ClientLimit:
    def __init__(self, limiter: Limiter, *, trusted_proxies: Networks) -> None:
        self._limiter = limiter
        self._trusted_proxies = trusted_proxies

    async def retry_after(self, request: Request) -> int | None:
        """Count this attempt; None when allowed, else seconds until the next one is.

        One statement on a pooled connection of its own, given back before the handler
        goes on: call it before the password is hashed, never inside a transaction."""
        if not self._limiter.enabled:
            return None
        key = client_key(request, trusted_proxies=self._trusted_proxies)
        return await self._limiter.hit(key=key)
