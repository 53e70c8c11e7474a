"""A TCP proxy in front of the SMTP server, for outage tests and the bench.

It counts connections (how many SMTP sessions a backlog took), can be taken down
(connections refused) or paused (connections accepted, greeting withheld: a hung
server), and can add network latency (each direction delays what it forwards).
It sits in front of any SMTP server, ours or a real MailHog.
"""

import asyncio
import contextlib
import threading
from collections.abc import Coroutine
from typing import Any


class SmtpProxy:
    def __init__(
        self, upstream_host: str, upstream_port: int, *, one_way_delay: float = 0.0
    ) -> None:
        self._upstream = (upstream_host, upstream_port)
        self._delay = one_way_delay
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._server: asyncio.Server | None = None
        self._resumed = asyncio.Event()
        self._resumed.set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._writers: set[asyncio.StreamWriter] = set()
        self.connections = 0
        self.port = 0  # chosen by the system at the first `up()`, then kept

    def __enter__(self) -> "SmtpProxy":
        self._thread.start()
        self.up()
        return self

    def __exit__(self, *exc: object) -> None:
        self.down()
        self._call(self._cancel_all())
        self._call(self._closed())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5)
        self._loop.close()

    def up(self) -> None:
        """Accept (and forward) connections again."""
        self._call(self._listen())

    def down(self) -> None:
        """Refuse new connections and cut the open ones: the server is gone."""
        self._call(self._close())

    def pause(self) -> None:
        """Accept connections but hold them silent, like a server that hangs."""
        self._loop.call_soon_threadsafe(self._resumed.clear)

    def resume(self) -> None:
        self._loop.call_soon_threadsafe(self._resumed.set)

    def reset_count(self) -> None:
        self.connections = 0

    def _call(self, coroutine: Coroutine[Any, Any, None]) -> None:
        asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(timeout=10)

    async def _listen(self) -> None:
        if self._server is None:
            self._server = await asyncio.start_server(
                self._handle, "127.0.0.1", self.port, reuse_address=True
            )
            self.port = self._server.sockets[0].getsockname()[1]

    async def _close(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None
        await self._cancel_all()

    async def _cancel_all(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _closed(self) -> None:
        """Wait until every socket closed so far is closed for good. A transport is only
        closing until its loop runs once more: stopped before that, the loop would leave
        them for the garbage collector, which warns (`unclosed transport`) in whichever
        test happens to be running, or at the end of the session."""
        for writer in list(self._writers):
            writer.close()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(
                asyncio.gather(
                    *(writer.wait_closed() for writer in self._writers), return_exceptions=True
                ),
                timeout=5,
            )
        self._writers.clear()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self._writers.add(writer)
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            await self._resumed.wait()
            up_reader, up_writer = await asyncio.open_connection(*self._upstream)
            self._writers.add(up_writer)
            await asyncio.gather(
                _pipe(reader, up_writer, self._delay), _pipe(up_reader, writer, self._delay)
            )
        except (OSError, asyncio.CancelledError):
            pass
        finally:
            self._tasks.discard(task)
            writer.close()


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, delay: float) -> None:
    try:
        while data := await reader.read(65536):
            if delay:
                await asyncio.sleep(delay)
            writer.write(data)
            await writer.drain()
    finally:
        with contextlib.suppress(OSError):
            writer.close()
