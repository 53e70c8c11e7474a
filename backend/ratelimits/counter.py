"""A limit over one kind of key, and the counter protocol its storages implement."""

import hashlib
from typing import Protocol

from limits import RateLimitItem, parse


class RateLimitStorageUnavailable(Exception):
    """The counter's storage did not answer: the request cannot be counted (503)."""


class Counter(Protocol):
    async def hit(
        self, *, name: str, key: str, item: RateLimitItem, cost: int, force: bool
    ) -> int | None:
        """Count `cost` hits of `key` under `item` (a moving window). None when they fit
        and were counted; otherwise the seconds until they would fit, nothing counted.
        With `force` they are counted whatever the count already is, and None is returned."""
        ...

    async def reset(self, *, name: str, key: str, item: RateLimitItem) -> None:
        """Forget every hit of `key`: its next hit starts a fresh count."""
        ...

    async def close(self) -> None: ...


class Limiter:
    """One limit ("3/hour"; empty: off) counted per key in a shared Counter.

    Keys are stored as a keyed hash (BLAKE2b under a key derived from SECRET_KEY): the
    table or the Redis keys hold no IP or email address, and the hash of an IPv4 address
    cannot be reversed by trying all 2^32 of them without the secret.
    """

    def __init__(self, *, name: str, limit: str, counter: Counter, secret: str) -> None:
        self.name = name
        self.item: RateLimitItem | None = parse(limit) if limit else None
        self._counter = counter
        self._hash_key = hashlib.sha256(b"rate-limit-keys\0" + secret.encode()).digest()

    @property
    def enabled(self) -> bool:
        return self.item is not None

    async def hit(self, *, key: str, cost: int = 1) -> int | None:
        """Count `cost` against `key`: None when allowed, else seconds until it would be
        (a refused hit is not counted, so a client that keeps trying is let in on time)."""
        if self.item is None:
            return None
        return await self._counter.hit(
            name=self.name, key=self.digest(key), item=self.item, cost=cost, force=False
        )

    async def spend(self, *, key: str, cost: int = 1) -> None:
        """Count `cost` against `key` even past the limit: for something that happens
        anyway but must use up the budget that later hits are checked against."""
        if self.item is not None:
            await self._counter.hit(
                name=self.name, key=self.digest(key), item=self.item, cost=cost, force=True
            )

    async def clear(self, *, key: str) -> None:
        """Forget the hits of `key` (a completed password reset clears its account's
        sign-in count, so a stranger's failed attempts cannot lock the owner out)."""
        if self.item is not None:
            await self._counter.reset(name=self.name, key=self.digest(key), item=self.item)

    def digest(self, key: str) -> str:
        return hashlib.blake2b(key.encode(), key=self._hash_key, digest_size=16).hexdigest()
