"""SMTP connections opened through fastapi-mail, kept open between batches while a
backlog drains, so a drain is not a handshake (and a login) per batch."""

import asyncio
import contextlib
import time
from dataclasses import dataclass, field

import aiosmtplib
from fastapi_mail import ConnectionConfig
from fastapi_mail.connection import Connection

# A connection idle longer than this is checked with NOOP before reuse: relays close
# idle sessions, and a message must not meet a dead connection.
_CHECK_AFTER_IDLE_SECONDS = 1.0


@dataclass(eq=False)
class _Idle:
    smtp: aiosmtplib.SMTP
    since: float = field(default_factory=time.monotonic)


class ConnectionPool:
    def __init__(self, config: ConnectionConfig, *, idle_seconds: float) -> None:
        self._config = config
        self._idle_seconds = idle_seconds
        self._idle: list[_Idle] = []
        self._closing: set[asyncio.Task[None]] = set()

    async def open(self) -> aiosmtplib.SMTP:
        """A new connection (connected, TLS and login done as configured); raises
        fastapi-mail's ConnectionErrors wrapping the cause when that fails."""
        connection = Connection(self._config)
        try:
            await connection.__aenter__()
        except BaseException:
            # fastapi-mail leaves a connection whose login (or TLS) failed open; so would
            # a cancellation mid-handshake.
            session = getattr(connection, "session", None)
            if isinstance(session, aiosmtplib.SMTP):
                session.close()
            raise
        smtp: aiosmtplib.SMTP = connection.session
        return smtp

    async def acquire(self) -> aiosmtplib.SMTP:
        while self._idle:
            idle = self._idle.pop()
            smtp = idle.smtp
            if time.monotonic() - idle.since < _CHECK_AFTER_IDLE_SECONDS:
                return smtp
            try:
                await smtp.noop()
                return smtp
            except Exception:
                smtp.close()
        return await self.open()

    def give_back(self, smtp: aiosmtplib.SMTP, *, reusable: bool) -> None:
        if not (reusable and smtp.is_connected):
            smtp.close()
            return
        if self._idle_seconds <= 0:  # reuse turned off: one connection per batch
            self._quit_later(smtp)
            return
        idle = _Idle(smtp)
        self._idle.append(idle)
        asyncio.get_running_loop().call_later(self._idle_seconds, self._expire, idle)

    def _expire(self, idle: _Idle) -> None:
        if idle in self._idle:
            self._idle.remove(idle)
            self._quit_later(idle.smtp)

    def _quit_later(self, smtp: aiosmtplib.SMTP) -> None:
        task = asyncio.create_task(quit_quietly(smtp))
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)

    async def close(self) -> None:
        for idle in self._idle:
            self._quit_later(idle.smtp)
        self._idle.clear()
        await asyncio.gather(*self._closing, return_exceptions=True)


async def quit_quietly(smtp: aiosmtplib.SMTP) -> None:
    """QUIT politely; a relay that is already gone changes nothing."""
    with contextlib.suppress(Exception):
        await asyncio.wait_for(smtp.quit(), timeout=5)
    smtp.close()
