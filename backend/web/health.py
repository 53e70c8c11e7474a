"""Health for load balancers and orchestrators: alive, and able to reach the database."""

import asyncio
from typing import Literal

from fastapi import APIRouter, status
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine

from backend.web.deps import ContextDep
from backend.web.responses import RETRY_AFTER

router = APIRouter(tags=["health"])


class Alive(BaseModel):
    status: Literal["alive"]


class Health(BaseModel):
    status: Literal["ok", "unavailable"]
    # "ok", or the kind of error that reaching it raised (no message: it may name hosts).
    database: str


@router.get("/livez", responses={status.HTTP_200_OK: {"model": Alive}})
async def livez() -> JSONResponse:
    """The process serves requests. Never touches the database: a database outage must
    not make an orchestrator restart every replica in the middle of its work."""
    return JSONResponse({"status": "alive"})


@router.get(
    "/healthz",
    responses={
        status.HTTP_200_OK: {"model": Health, "description": "The database answers"},
        status.HTTP_503_SERVICE_UNAVAILABLE: {
            "model": Health,
            "description": "The database did not answer within 2 s",
            "headers": RETRY_AFTER,
        },
    },
)
async def healthz(context: ContextDep) -> JSONResponse:
    """The database answers, through a connection of the check's own (never queued behind
    registrations for a pooled one), within two seconds."""
    try:
        async with asyncio.timeout(2):
            await _select_one(context.health_engine)
    except Exception as exc:
        return JSONResponse(
            {"status": "unavailable", "database": f"{type(exc).__name__}"},
            status_code=503,
            headers={"Retry-After": "5"},
        )
    return JSONResponse({"status": "ok", "database": "ok"})


async def _select_one(engine: AsyncEngine) -> None:
    try:
        async with engine.connect() as connection:
            await connection.execute(text("SELECT 1"))
    except DBAPIError as exc:
        if not exc.connection_invalidated:
            raise
        # The kept connection died with a database restart (it is now discarded): a
        # healthy database gets one more try on a new one before the check says no.
        async with engine.connect() as connection:
            await connection.execute(text("SELECT 1"))
