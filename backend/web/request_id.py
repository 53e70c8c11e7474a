"""`X-Request-ID`: taken from the request when it is sane, made otherwise, sent back on
every response, and current (`observability.request_context`) while the request runs, so
that every line logged for it, and every job it queues, carries it.

A pure ASGI middleware, wrapped around the whole app, Starlette's error middleware
included (see `main.App`): a 500 carries the id too, and so does uvicorn's
access line, which uvicorn writes as the response starts.
"""

import re
import uuid

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from backend.observability.request_context import LogContext, bind, unbind

HEADER = "X-Request-ID"
_HEADER_KEY = HEADER.lower().encode("latin-1")
# What a proxy or a client sends (uuids, hex, `Root=1-…` trace ids), and nothing that
# could forge a log line or a header: no spaces, quotes, control characters or non-ASCII.
_SANE = re.compile(rb"[A-Za-z0-9._:;=+/@-]{1,128}")


def request_id_from(headers: list[tuple[bytes, bytes]]) -> str:
    """The client's id when it is sane, else a new one (32 hex characters)."""
    for name, value in headers:
        if name == _HEADER_KEY:
            if _SANE.fullmatch(value):
                return value.decode("ascii")
            break
    return uuid.uuid4().hex


class RequestIdMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = request_id_from(scope["headers"])
        scope.setdefault("state", {})["request_id"] = request_id

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                message.setdefault("headers", [])
                MutableHeaders(scope=message)[HEADER] = request_id
            await send(message)

        token = bind(LogContext(request_id=request_id))
        await self.app(scope, receive, send_with_id)
        # Not on an exception: uvicorn's "Exception in ASGI application" with its traceback
        # is logged after it leaves here, in this request's task, and should carry the id.
        unbind(token)
