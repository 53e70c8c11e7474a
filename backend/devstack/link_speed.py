"""MailHog's ``LinkSpeed``: a connection slowed to so many bytes per second, both ways.

MailHog wraps the connection in ``linkio`` reader and writer; here replies are written in
small chunks with a pause after each, and each read pauses for its size. The limit lasts
until Jim is changed or turned off (MailHog keeps it for the connection's life).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

from backend.devstack.jim import Jim


class LinkSpeed:
    """A throttled connection's rate, until Jim is changed or turned off."""

    def __init__(self, jim: Jim, rate: float) -> None:
        self._jim = jim
        self._generation = jim.generation
        self.rate = rate

    @property
    def active(self) -> bool:
        return self._jim.generation == self._generation

    def chunks(self, data: bytes) -> Iterator[bytes]:
        step = max(1, int(self.rate / 20))  # about 20 writes a second
        for start in range(0, len(data), step):
            yield data[start : start + step]

    async def pace(self, size: int) -> None:
        if self.active:
            await asyncio.sleep(size / self.rate)


class ThrottledReader:
    """The connection's StreamReader, taking ``size / rate`` seconds for each read."""

    def __init__(self, reader: asyncio.StreamReader, speed: LinkSpeed) -> None:
        self._reader = reader
        self._speed = speed

    async def readuntil(self, separator: bytes = b"\n") -> bytes:
        data = await self._reader.readuntil(separator)
        await self._speed.pace(len(data))
        return data

    async def readline(self) -> bytes:
        data = await self._reader.readline()
        await self._speed.pace(len(data))
        return data

    async def read(self, n: int = -1) -> bytes:
        data = await self._reader.read(n)
        await self._speed.pace(len(data))
        return data

    def __getattr__(self, name: str) -> Any:
        return getattr(self._reader, name)
