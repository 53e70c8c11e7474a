"""ALLOWED_HOSTS: the app answers only the Host names it is served under.

Starlette builds absolute URLs from the Host header (the trailing-slash redirect's
`Location`, `request.url_for`): a request with `Host: evil.example` would otherwise be
redirected there, and a cache in front could keep that answer for everyone. Any other
Host gets a plain 400. The probes (`/healthz`, `/livez`) answer any Host: load balancers
and orchestrators call them by IP address.
"""

from starlette.datastructures import Headers
from starlette.responses import PlainTextResponse
from starlette.types import ASGIApp, Receive, Scope, Send

PROBE_PATHS = frozenset({"/healthz", "/livez"})


def host_name(host_header: str) -> str:
    """`Example.COM:8000` → `example.com`; `[::1]:8000` → `::1`."""
    host = host_header.strip().lower()
    if host.startswith("["):
        return host[1:].partition("]")[0]
    return host.rpartition(":")[0] if host.count(":") == 1 else host


def host_allowed(name: str, allowed: frozenset[str]) -> bool:
    if "*" in allowed or name in allowed:
        return True
    # `*.example.com` allows every subdomain of example.com, not example.com itself.
    return any(
        pattern.startswith("*.") and name.endswith(pattern[1:]) and len(name) > len(pattern) - 1
        for pattern in allowed
    )


class AllowedHosts:
    def __init__(self, app: ASGIApp, *, allowed: frozenset[str]) -> None:
        self.app = app
        self.allowed = allowed

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in PROBE_PATHS:
            await self.app(scope, receive, send)
            return
        name = host_name(Headers(scope=scope).get("host", ""))
        if not host_allowed(name, self.allowed):
            # Plain text, naming nothing: the Host sent is not echoed back.
            refusal = PlainTextResponse("Invalid Host header", status_code=400)
            await refusal(scope, receive, send)
            return
        await self.app(scope, receive, send)
