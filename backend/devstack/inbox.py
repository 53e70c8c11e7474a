"""A MailHog-compatible development mail inbox: an SMTP sink plus MailHog's HTTP API and a web UI.

It is a standalone dev tool: it imports nothing from ``backend`` outside ``devstack``.
The JSON it serves mirrors MailHog v1.0.1 (``github.com/mailhog/data``) so that existing
MailHog clients and test helpers work against it unchanged. That includes MailHog's chaos
monkey, Jim (``/api/v2/jim``), with our deterministic ``Faults`` rules on top (``jim``).

This module runs the servers; ``inbox_smtp`` is the SMTP side, ``inbox_http`` the API and
UI, ``inbox_store`` the messages they share. Both servers run on one event loop, which is
also where Jim's state lives (``jim``, ``jim_config``, ``jim_api``, ``link_speed``).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import socket
import threading
from collections.abc import Sequence
from types import TracebackType

import uvicorn

from backend.devstack.inbox_http import create_app
from backend.devstack.inbox_smtp import InboxHandler, JimSMTP
from backend.devstack.inbox_store import MessageStore
from backend.devstack.jim import Jim


def _listen(host: str, port: int) -> socket.socket:
    """Bind up front so that port 0 reports the real port before the servers start."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # An explicit IPPROTO_TCP matters: asyncio only disables Nagle on accepted sockets whose
    # proto says TCP, and without that multi-write replies stall ~40 ms on delayed ACKs.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        # Lets a quick restart rebind while old connections sit in TIME_WAIT.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen()
    except OSError:
        sock.close()
        raise
    return sock


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


class DevInbox:
    """Runs the SMTP sink and the HTTP API/UI on one event loop in a daemon thread."""

    def __init__(
        self,
        *,
        smtp_host: str = "127.0.0.1",
        smtp_port: int = 1025,
        http_host: str = "127.0.0.1",
        http_port: int = 8025,
    ) -> None:
        self._smtp_address = (smtp_host, smtp_port)
        self._http_address = (http_host, http_port)
        self._store = MessageStore()
        self._jim = Jim()
        self._bound_smtp_port: int | None = None
        self._bound_http_port: int | None = None
        self._thread: threading.Thread | None = None
        self._http_server: uvicorn.Server | None = None
        self._ready = threading.Event()
        self._serving = False

    @property
    def smtp_port(self) -> int:
        if self._bound_smtp_port is None:
            raise RuntimeError("DevInbox has not been started")
        return self._bound_smtp_port

    @property
    def http_port(self) -> int:
        if self._bound_http_port is None:
            raise RuntimeError("DevInbox has not been started")
        return self._bound_http_port

    @property
    def api_url(self) -> str:
        return f"http://{_url_host(self._http_address[0])}:{self.http_port}"

    def start(self) -> None:
        if self._thread is not None:
            raise RuntimeError("DevInbox is already running")
        smtp_sock = _listen(*self._smtp_address)
        try:
            http_sock = _listen(*self._http_address)
        except OSError:
            smtp_sock.close()
            raise
        self._bound_smtp_port = smtp_sock.getsockname()[1]
        self._bound_http_port = http_sock.getsockname()[1]
        config = uvicorn.Config(
            create_app(self._store, self._jim, listen_host=self._http_address[0]),
            log_level="warning",
            access_log=False,
            lifespan="off",
            timeout_graceful_shutdown=1,
        )
        self._http_server = uvicorn.Server(config)
        self._ready.clear()
        self._serving = False
        self._thread = threading.Thread(
            target=self._run, args=(smtp_sock, http_sock), name="dev-inbox", daemon=True
        )
        self._thread.start()
        self._ready.wait()
        if not self._serving:
            self._thread.join()
            self._thread = None
            raise RuntimeError("DevInbox failed to start (see the thread's traceback)")

    def stop(self) -> None:
        if self._thread is None or self._http_server is None:
            return
        # uvicorn polls this flag on its own loop; once it returns, _serve closes SMTP too.
        self._http_server.should_exit = True
        # Bounded: Ctrl-C must stop the inbox even if a connection will not let go (the
        # thread is a daemon and ends with the process).
        self._thread.join(timeout=5)
        self._thread = None

    def __enter__(self) -> DevInbox:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def _run(self, smtp_sock: socket.socket, http_sock: socket.socket) -> None:
        try:
            asyncio.run(self._serve(smtp_sock, http_sock))
        finally:
            # Never leave start() blocked if the loop dies before both servers are up.
            self._ready.set()

    async def _serve(self, smtp_sock: socket.socket, http_sock: socket.socket) -> None:
        assert self._http_server is not None
        loop = asyncio.get_running_loop()
        handler = InboxHandler(self._store)
        smtp_server = await loop.create_server(
            lambda: JimSMTP(handler, self._jim, loop=loop), sock=smtp_sock
        )
        try:
            http_task = asyncio.create_task(self._http_server.serve(sockets=[http_sock]))
            # uvicorn exposes no startup event, only this flag.
            while not self._http_server.started:
                if http_task.done():
                    http_task.result()
                    return
                await asyncio.sleep(0.01)
            self._serving = True
            self._ready.set()
            await http_task
        finally:
            smtp_server.close()


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m backend.devstack.inbox",
        description="MailHog-compatible dev mail inbox (SMTP sink + web UI + MailHog API).",
    )
    parser.add_argument("--host", default="127.0.0.1", help="interface for both servers")
    parser.add_argument("--smtp-port", type=int, default=1025)
    parser.add_argument("--http-port", type=int, default=8025)
    args = parser.parse_args(argv)
    inbox = DevInbox(
        smtp_host=args.host,
        smtp_port=args.smtp_port,
        http_host=args.host,
        http_port=args.http_port,
    )
    with inbox:
        print(f"SMTP server:     smtp://{_url_host(args.host)}:{inbox.smtp_port}")
        print(f"Web UI + API:    {inbox.api_url}/")
        print("Press Ctrl-C to stop.")
        with contextlib.suppress(KeyboardInterrupt):
            threading.Event().wait()


if __name__ == "__main__":
    main()
