"""The ASGI app: `uvicorn backend.main:app`."""

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError

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
    return app


async def _validation_failed(request: Request, exc: Exception) -> Response:
    # FastAPI's default echoes each rejected value, which would send a password back.
    assert isinstance(exc, RequestValidationError)
    errors = [{k: v for k, v in error.items() if k != "input"} for error in exc.errors()]
    return JSONResponse({"detail": jsonable_encoder(errors)}, status_code=422)


async def _database_unavailable(request: Request, exc: Exception) -> Response:
    # A database that is down or restarting is a 503 to retry, not a 500.
    unreachable = isinstance(exc, OSError | OperationalError | InterfaceError) or (
        isinstance(exc, DBAPIError) and exc.connection_invalidated
    )
    if not unreachable:
        raise exc
    log.error("request failed on an unavailable dependency: %r", exc)
    if request.url.path.startswith("/api/"):
        return JSONResponse(
            {"detail": "The service is temporarily unavailable. Please retry shortly."},
            status_code=503,
            headers={"Retry-After": "5"},
        )
    return templates.TemplateResponse(request, "unavailable.html", {}, status_code=503)


app = create_app()
