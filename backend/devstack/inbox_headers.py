"""Security headers on the dev inbox's responses.

The same policy as the app's (`backend/web/security_headers.py`), written again here
because the inbox is a tool beside the app and imports nothing from it. A pure ASGI
middleware: it only edits the header list when a response starts.
"""

from __future__ import annotations

import re

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

# The UI's CSS and JS are files under /static: no 'unsafe-inline'. Its fetches and its
# message frame are same-origin ('self' by default-src).
PAGE_CSP = "; ".join(
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

# The HTML body of one email, shown in the UI's sandboxed iframe. Emails carry their styles
# inline (mail clients drop <link> and often <style>), so this one response allows inline
# styles, and nothing else: no script at all, no form, no plugin. frame-ancestors 'self'
# lets only the inbox's own page frame it, and the `sandbox` directive keeps the mail inert
# even when its URL is opened on its own, outside the iframe. Images may come from data:
# or the web, as in a mail client showing images.
MESSAGE_CSP = "; ".join(
    [
        "default-src 'none'",
        "style-src 'unsafe-inline'",
        "img-src data: http: https:",
        "font-src data:",
        "form-action 'none'",
        "base-uri 'none'",
        "frame-ancestors 'self'",
        "sandbox allow-popups allow-popups-to-escape-sandbox",
    ]
)

_HEAD = re.compile(r"<head(\s[^>]*)?>", re.IGNORECASE)
# No href, so base-uri does not apply to it.
_BASE_TARGET = '<base target="_blank">'


def with_base_target(html: str) -> str:
    """Links in the mail open a new tab instead of navigating the sandboxed frame."""
    match = _HEAD.search(html)
    if match is None:
        return _BASE_TARGET + html
    return html[: match.end()] + _BASE_TARGET + html[match.end() :]


class InboxSecurityHeaders:
    """nosniff everywhere; on HTML, the page CSP (unless the response set its own, as the
    message view does) and no Referer, which would hand the inbox's URL to linked sites."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                headers.setdefault("X-Content-Type-Options", "nosniff")
                if headers.get("content-type", "").startswith("text/html"):
                    headers.setdefault("Content-Security-Policy", PAGE_CSP)
                    headers.setdefault("Referrer-Policy", "no-referrer")
            await send(message)

        await self.app(scope, receive, send_with_headers)
