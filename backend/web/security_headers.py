"""Security headers on the app's responses, and the `no-store` opt-in for token pages.

A pure ASGI middleware: it edits the header list of `http.response.start` and never
touches the body, so a response (`/healthz` included) pays a few list operations and no
extra task or buffering (as Starlette's `BaseHTTPMiddleware` would add).
"""

from fastapi import Depends, Request
from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

# No 'unsafe-inline' anywhere: the pages' CSS and any script are files under /static, so
# an injected <script> or style="" does nothing. frame-ancestors 'none' refuses framing
# (clickjacking); base-uri and form-action keep an injected <base> or <form> from sending
# the form, with its CSRF token, elsewhere.
CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'self'",
        "img-src 'self' data:",
        "style-src 'self'",
        "script-src 'self'",
        "form-action 'self'",
        "base-uri 'none'",
        "frame-ancestors 'none'",
        "object-src 'none'",
    ]
)
# No page of this app uses a camera, a microphone, the location or payments: an injected
# or framed script gets none of them either.
PERMISSIONS_POLICY = ", ".join(
    f"{feature}=()"
    for feature in (
        "accelerometer",
        "camera",
        "geolocation",
        "gyroscope",
        "magnetometer",
        "microphone",
        "payment",
        "usb",
    )
)
# One year, this host only: includeSubDomains or preload would bind hosts this app does
# not own, which is the operator's decision, not the app's.
STRICT_TRANSPORT_SECURITY = "max-age=31536000"

_NO_STORE_FLAG = "no_store"


class SecurityHeaders:
    """Adds nosniff everywhere; CSP, Referrer-Policy, X-Frame-Options and
    Permissions-Policy on HTML; HSTS when served over
    https (`APP_BASE_URL`); `Cache-Control: no-store` where a route asked for it."""

    def __init__(self, app: ASGIApp, *, hsts: bool) -> None:
        self.app = app
        self.hsts = hsts

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                self._add(scope, MutableHeaders(scope=message))
            await send(message)

        await self.app(scope, receive, send_with_headers)

    def _add(self, scope: Scope, headers: MutableHeaders) -> None:
        headers.setdefault("X-Content-Type-Options", "nosniff")
        if self.hsts:
            headers.setdefault("Strict-Transport-Security", STRICT_TRANSPORT_SECURITY)
        if headers.get("content-type", "").startswith("text/html"):
            headers.setdefault("Content-Security-Policy", CONTENT_SECURITY_POLICY)
            # The verify URL carries its token: no Referer may take it to another site.
            headers.setdefault("Referrer-Policy", "no-referrer")
            # frame-ancestors says it for browsers that read CSP; this for older ones.
            headers.setdefault("X-Frame-Options", "DENY")
            headers.setdefault("Permissions-Policy", PERMISSIONS_POLICY)
        if scope.get("state", {}).get(_NO_STORE_FLAG):
            headers["Cache-Control"] = "no-store"


def _no_store(request: Request) -> None:
    # request.state lives in the ASGI scope, which the middleware above reads when the
    # response starts.
    setattr(request.state, _NO_STORE_FLAG, True)


# A route that carries a token (a CSRF field, a token in its URL) or personal data opts in
# with `dependencies=[NO_STORE]`: every response of that route then gets
# `Cache-Control: no-store`, whichever return path or exception handler produced it, so a
# browser's or a proxy's cache never keeps the token. Declared on the route rather than
# set on each response, so that a new return path cannot forget it.
NO_STORE = Depends(_no_store)
