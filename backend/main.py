"""The ASGI app: `uvicorn backend.main:app`."""

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from backend.accounts.passwords import HashingOverloaded
from backend.context import AppContext
from backend.log_config import configure_logging
from backend.settings import Settings, get_settings
from backend.web import api, health, pages
from backend.web.deps import templates
from backend.web.ratelimit import RegistrationLimiter

log = logging.getLogger(__name__)


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    configure_logging(settings.log_level)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        context = AppContext.build(settings)
        app.state.context = context
        if settings.job_worker_enabled:
            # Recovery first thing: work a stopped server left unfinished runs now.
            context.runner.start()
        try:
            yield
        finally:
            await context.close()

    app = FastAPI(
        title="Welcome mail",
        summary="Register users; the welcome email and the audit trail follow in the background.",
        lifespan=lifespan,
    )
    app.state.registration_limiter = RegistrationLimiter(settings.register_rate_limit)
    app.include_router(pages.router)
    app.include_router(api.router)
    app.include_router(health.router)
    app.add_exception_handler(RequestValidationError, _validation_failed)
    app.add_exception_handler(DBAPIError, _database_unavailable)
    app.add_exception_handler(OSError, _database_unavailable)
    app.add_exception_handler(PoolTimeout, _database_unavailable)
    app.add_exception_handler(HashingOverloaded, _overloaded)
    return app


async def _validation_failed(request: Request, exc: Exception) -> Response:
    # FastAPI's default echoes each rejected value, which would send a password back.
    assert isinstance(exc, RequestValidationError)
    errors = [{k: v for k, v in error.items() if k != "input"} for error in exc.errors()]
    return JSONResponse({"detail": jsonable_encoder(errors)}, status_code=422)


async def _database_unavailable(request: Request, exc: Exception) -> Response:
    # A database that is down or restarting is a 503 to retry, not a 500.
    # A pool with no free connection in DATABASE_POOL_TIMEOUT_SECONDS is the same to a client.
    unreachable = isinstance(exc, OSError | OperationalError | InterfaceError | PoolTimeout) or (
        isinstance(exc, DBAPIError) and exc.connection_invalidated
    )
    if not unreachable:
        raise exc
    log.error("request failed on an unavailable dependency: %r", exc)
    return _try_later(request, retry_after=5, page="unavailable.html")


async def _overloaded(request: Request, exc: Exception) -> Response:
    # Shed at once, before anything is written: a bounded wait for those let in.
    assert isinstance(exc, HashingOverloaded)
    log.warning("registration shed: %s", exc)
    return _try_later(request, retry_after=exc.retry_after, page="busy.html")


def _try_later(request: Request, *, retry_after: int, page: str) -> Response:
    headers = {"Retry-After": str(retry_after)}
    if request.url.path.startswith("/api/"):
        return JSONResponse(
            {"detail": "The service is temporarily unavailable. Please retry shortly."},
            status_code=503,
            headers=headers,
        )
    return templates.TemplateResponse(
        request, page, {"retry_after": retry_after}, status_code=503, headers=headers
    )


app = create_app()
