"""Who may talk to the dev inbox: pages on this machine, by its own names.

The inbox has no login and shows every confirmation link. Two ways a web page elsewhere
could reach it through the developer's browser, both closed here:
- DNS rebinding: a site's name that re-resolves to 127.0.0.1 reads the inbox as its own
  origin. Its requests carry that name as Host: only loopback names (and the address the
  inbox listens on) are answered; anything else gets 400.
- Cross-site writes: a form or a `text/plain` fetch from another site needs no CORS
  preflight, and could turn Jim on or delete the mail. A POST, PUT or DELETE whose Origin
  is not one of those names, or that the browser marks cross-site, gets 403.
Tools (curl, the tests, the app) send no Origin and are not affected.
"""

from urllib.parse import urlsplit

from starlette.datastructures import Headers
from starlette.responses import PlainTextResponse
from starlette.types import ASGIApp, Receive, Scope, Send

LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1"})
_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def _host_name(host: str) -> str:
    host = host.strip().lower()
    if host.startswith("["):
        return host[1:].partition("]")[0]
    return host.rpartition(":")[0] if host.count(":") == 1 else host


class InboxGuard:
    def __init__(self, app: ASGIApp, *, listen_host: str = "127.0.0.1") -> None:
        self.app = app
        self.names = LOOPBACK_NAMES | {listen_host.strip("[]").lower()}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        if _host_name(headers.get("host", "")) not in self.names:
            await PlainTextResponse("Invalid Host header", 400)(scope, receive, send)
            return
        if scope["method"] not in _SAFE_METHODS and self._cross_site(headers):
            await PlainTextResponse("Cross-site request refused", 403)(scope, receive, send)
            return
        await self.app(scope, receive, send)

    def _cross_site(self, headers: Headers) -> bool:
        fetch_site = headers.get("sec-fetch-site")
        if fetch_site is not None:
            return fetch_site not in ("same-origin", "none")
        origin = headers.get("origin")
        if origin is None:
            return False
        # "null" (a sandboxed frame, a file:// page) is no name of ours either.
        return (urlsplit(origin).hostname or "") not in self.names
