"""Who may use the operator pages (/ops): HTTP basic auth as user `ops` with OPS_PASSWORD.

Basic auth rather than a login form: one shared operator secret, no session to keep, and
every HTTP client (a browser, curl) knows it. It goes in clear over plain HTTP, so serve
/ops over https only (docs/operating.md, "The operator page").
"""

import secrets
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, HTTPException, Request, status
from fastapi.security import HTTPBasic, HTTPBasicCredentials

from backend.ratelimits import Limiter
from backend.web.client_key import client_key
from backend.web.deps import ContextDep
from backend.web.ratelimit import RateLimited

OPERATOR = "ops"
REALM = "ops"
# Every request that carries credentials counts, per client, before they are checked: past
# the limit no guess is even tried (a limit on failures alone would still answer a right
# guess). A person clicking through the page stays far below it.
ATTEMPTS_LIMIT = "60/minute"

# auto_error=False: no credentials is our 401 below; a malformed header is FastAPI's 401,
# with the same WWW-Authenticate.
_basic = HTTPBasic(realm=REALM, auto_error=False)


@dataclass(frozen=True)
class Operator:
    name: str
    # The client as the rate limits see it (TRUSTED_PROXIES applied), for the audit rows.
    client: str


async def require_operator(
    request: Request,
    context: ContextDep,
    credentials: Annotated[HTTPBasicCredentials | None, Depends(_basic)],
) -> Operator:
    settings = context.settings
    if not settings.ops_enabled:
        # The router is not even mounted then (backend/main.py); this keeps it shut if it were.
        raise HTTPException(status.HTTP_404_NOT_FOUND)
    if credentials is None:
        raise _unauthorized()
    client = client_key(request, trusted_proxies=settings.trusted_proxy_networks)
    limiter = Limiter(
        name="ops-auth",
        limit=ATTEMPTS_LIMIT,
        counter=context.rate_counter,
        secret=settings.secret_key.get_secret_value(),
    )
    if (retry_after := await limiter.hit(key=client)) is not None:
        raise RateLimited(retry_after, detail="Too many attempts; try again later.")
    # Both compared whatever the first gave: the time taken tells nothing about either.
    user_ok = secrets.compare_digest(credentials.username.encode(), OPERATOR.encode())
    password_ok = secrets.compare_digest(
        credentials.password.encode(), settings.ops_password.get_secret_value().encode()
    )
    if not (user_ok and password_ok):
        raise _unauthorized()
    return Operator(name=OPERATOR, client=client)


def _unauthorized() -> HTTPException:
    return HTTPException(
        status.HTTP_401_UNAUTHORIZED,
        detail="Not authenticated",
        headers={"WWW-Authenticate": f'Basic realm="{REALM}"'},
    )


OperatorDep = Annotated[Operator, Depends(require_operator)]
