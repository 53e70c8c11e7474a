"""`GET /metrics`: the Prometheus text format, for a scraper on the operators' network.

Left out of the OpenAPI document: it is no part of the API clients use. The labels name
no one (see backend/observability/metrics.py), but the figures (registrations, queue
depth, relay state) are the operators' business: keep the path off the public internet
at the proxy, or turn it off with METRICS_ENABLED=false.
"""

from fastapi import APIRouter, HTTPException, status
from fastapi.responses import Response

from backend.observability import metrics
from backend.web.deps import ContextDep

router = APIRouter(include_in_schema=False)


@router.get("/metrics")
async def metrics_page(context: ContextDep) -> Response:
    if not context.settings.metrics_enabled:
        raise HTTPException(status.HTTP_404_NOT_FOUND)
    # Read here, in the route, and handed to the page as data: collectors do no I/O.
    queue = await context.queue_stats.snapshot()
    return Response(
        metrics.render(queue),
        media_type=metrics.CONTENT_TYPE,
        headers={"Cache-Control": "no-store"},
    )
