"""The server span of each HTTP request, when traces are on (`observability.tracing`).

Inside `RequestIdMiddleware`, so the span can carry the request id; around everything
else, so the request's work (and the jobs it queues) happens inside the span. With traces
off it costs one attribute read per request.
"""

from starlette.types import ASGIApp, Receive, Scope, Send

from backend.observability import tracing


class TracingMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        spans = tracing.active
        if spans is None or scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        await spans.serve_http(self.app, scope, receive, send)
