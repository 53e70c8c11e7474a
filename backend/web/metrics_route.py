"""`GET /metrics`: the Prometheus text format, for the operator's scraper only.

Left out of the OpenAPI document: it is no part of the API clients use. The labels name
no one (see backend/observability/metrics.py), but the figures are an oracle: with
REGISTRATION_ENUMERATION_SAFE, a taken address moves `outcome="owner_notified"` where a
new one moves `created`, and a resend for an unconfirmed address moves the verification
jobs where an unknown one moves nothing. So the page needs METRICS_TOKEN as a bearer
token; without one set it is served in development only (404 elsewhere, as if absent).
"""

import secrets
from typing import Annotated

from fastapi import APIRouter, Header, HTTPException, status
from fastapi.responses import Response

from backend.observability import metrics
from backend.web.deps import ContextDep

router = APIRouter(include_in_schema=False)


@router.get("/metrics")
async def metrics_page(
    context: ContextDep, authorization: Annotated[str, Header()] = ""
) -> Response:
    settings = context.settings
    token = settings.metrics_token.get_secret_value()
    if not settings.metrics_enabled or (not token and settings.environment != "development"):
        raise HTTPException(status.HTTP_404_NOT_FOUND)
    if token:
        scheme, _, given = authorization.partition(" ")
        # Constant time: the comparison must not tell how much of a guess was right.
        if scheme.lower() != "bearer" or not secrets.compare_digest(
            given.strip().encode(), token.encode()
        ):
            raise HTTPException(
                status.HTTP_401_UNAUTHORIZED,
                detail="Bearer METRICS_TOKEN required",
                headers={"WWW-Authenticate": 'Bearer realm="metrics"'},
            )
    # Read here, in the route, and handed to the page as data: collectors do no I/O.
    queue = await context.queue_stats.snapshot()
    return Response(
        metrics.render(queue),
        media_type=metrics.CONTENT_TYPE,
        headers={"Cache-Control": "no-store"},
    )
