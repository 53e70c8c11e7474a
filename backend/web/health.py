"""Health for load balancers and orchestrators: alive, and able to reach the database."""

import asyncio

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from sqlalchemy import text

from backend.web.deps import ContextDep

router = APIRouter(tags=["health"])


@router.get("/livez")
async def livez() -> JSONResponse:
    """The process serves requests. Never touches the database: a database outage must
    not make an orchestrator restart every replica in the middle of its work."""
    return JSONResponse({"status": "alive"})


@router.get("/healthz")
async def healthz(context: ContextDep) -> JSONResponse:
    """The database answers, through a connection of the check's own (never queued behind
    registrations for a pooled one), within two seconds."""
    try:
        async with asyncio.timeout(2), context.health_engine.connect() as connection:
            await connection.execute(text("SELECT 1"))
    except Exception as exc:
        return JSONResponse(
            {"status": "unavailable", "database": f"{type(exc).__name__}"},
            status_code=503,
            headers={"Retry-After": "5"},
        )
    return JSONResponse({"status": "ok", "database": "ok"})
