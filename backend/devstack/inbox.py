"""A MailHog-compatible development mail inbox: an SMTP sink plus MailHog's HTTP API and a web UI.

It is a standalone dev tool: it imports nothing from ``backend`` outside ``devstack``.
The JSON it serves mirrors MailHog v1.0.1 (``github.com/mailhog/data``) so that existing
MailHog clients and test helpers work against it unchanged.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import socket
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

import uvicorn
from aiosmtpd.smtp import SMTP, Envelope, Session
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route

from backend.devstack.mailhog_format import (
    HOSTNAME,
    MessageJSON,
    build_message,
    decoded_bodies,
    matches,
)

MAX_MESSAGE_BYTES = 32 * 1024 * 1024
DEFAULT_LIMIT = 50
MAX_LIMIT = 250  # MailHog's own cap on ``limit``
UI_HTML_PATH = Path(__file__).with_name("inbox_ui.html")


@dataclass(frozen=True)
class StoredMessage:
    message: MessageJSON
    raw: bytes

    @property
    def id(self) -> str:
        return self.message["ID"]


class MessageStore:
    """Thread-safe, in-memory; written from the SMTP loop, read by the HTTP handlers."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._messages: list[StoredMessage] = []

    def add(self, stored: StoredMessage) -> None:
        with self._lock:
            self._messages.append(stored)

    def newest_first(self) -> list[StoredMessage]:
        with self._lock:
            return self._messages[::-1]

    def get(self, message_id: str) -> StoredMessage | None:
        with self._lock:
            return next((m for m in self._messages if m.id == message_id), None)

    def delete(self, message_id: str) -> bool:
        with self._lock:
            kept = [m for m in self._messages if m.id != message_id]
            deleted = len(kept) != len(self._messages)
            self._messages = kept
            return deleted

    def clear(self) -> None:
        with self._lock:
            self._messages = []


class _SMTPHandler:
    def __init__(self, store: MessageStore) -> None:
        self._store = store

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        raw = envelope.original_content or b""
        message = build_message(
            raw, envelope.mail_from or "", envelope.rcpt_tos, session.host_name or ""
        )
        self._store.add(StoredMessage(message, raw))
        return f"250 Ok: queued as {message['ID']}"


def _int_param(request: Request, name: str, default: int) -> int:
    # MailHog silently falls back to the default for anything that isn't a positive integer.
    value = request.query_params.get(name, "")
    return int(value) if value.isdigit() and int(value) > 0 else default


def _page(request: Request, messages: list[StoredMessage]) -> JSONResponse:
    start = _int_param(request, "start", 0)
    limit = min(_int_param(request, "limit", DEFAULT_LIMIT), MAX_LIMIT)
    page = messages[start : start + limit]
    return JSONResponse(
        {
            "total": len(messages),
            "count": len(page),
            "start": start,
            "items": [m.message for m in page],
        }
    )


def create_app(store: MessageStore) -> Starlette:
    ui_html = UI_HTML_PATH.read_text(encoding="utf-8")

    def find(request: Request) -> StoredMessage:
        stored = store.get(request.path_params["id"])
        if stored is None:
            raise HTTPException(404, "message not found")
        return stored

    async def index(request: Request) -> HTMLResponse:
        return HTMLResponse(ui_html)

    async def v2_messages(request: Request) -> JSONResponse:
        return _page(request, store.newest_first())

    async def v2_search(request: Request) -> JSONResponse:
        kind = request.query_params.get("kind", "")
        query = request.query_params.get("query", "")
        if kind not in ("from", "to", "containing") or not query:
            raise HTTPException(400, "kind must be from, to or containing, and query non-empty")
        found = [m for m in store.newest_first() if matches(m.message, kind, query)]
        return _page(request, found)

    async def v1_messages(request: Request) -> JSONResponse:
        return JSONResponse([m.message for m in store.newest_first()])

    async def v1_delete_all(request: Request) -> Response:
        store.clear()
        return Response(status_code=200)

    async def v1_message(request: Request) -> JSONResponse:
        return JSONResponse(find(request).message)

    async def v1_delete(request: Request) -> Response:
        if not store.delete(request.path_params["id"]):
            raise HTTPException(404, "message not found")
        return Response(status_code=200)

    async def v1_download(request: Request) -> Response:
        stored = find(request)
        return Response(
            stored.raw,
            media_type="message/rfc822",
            headers={"Content-Disposition": f'attachment; filename="{stored.id}.eml"'},
        )

    async def dev_parts(request: Request) -> JSONResponse:
        return JSONResponse(decoded_bodies(find(request).raw))

    return Starlette(
        routes=[
            Route("/", index),
            Route("/api/v2/messages", v2_messages),
            Route("/api/v2/search", v2_search),
            Route("/api/v1/messages", v1_messages),
            Route("/api/v1/messages", v1_delete_all, methods=["DELETE"]),
            Route("/api/v1/messages/{id}", v1_message),
            Route("/api/v1/messages/{id}", v1_delete, methods=["DELETE"]),
            Route("/api/v1/messages/{id}/download", v1_download),
            Route("/api/dev/messages/{id}/parts", dev_parts),
        ]
    )


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
            create_app(self._store),
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
        self._thread.join()
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
        handler = _SMTPHandler(self._store)
        smtp_server = await loop.create_server(
            lambda: SMTP(
                handler,
                hostname=HOSTNAME,  # avoids a getfqdn() DNS lookup per connection
                data_size_limit=MAX_MESSAGE_BYTES,
                enable_SMTPUTF8=True,
                loop=loop,
            ),
            sock=smtp_sock,
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
