"""The ASGI app: `uvicorn backend.main:app`.

`app` is made on first access (PEP 562), not at import: importing `create_app` (the tests,
tools) must not read the process's settings, which outside development refuse to load
without a real SECRET_KEY.
"""

import asyncio
import gc
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp

from backend.accounts.passwords import HashingOverloaded
from backend.context import AppContext
from backend.log_config import configure_logging
from backend.observability import metrics, tracing
from backend.ratelimits import RateLimitStorageUnavailable
from backend.settings import Settings, get_settings, settings_or_exit
from backend.web import (
    api,
    email_change_api,
    email_change_pages,
    health,
    mail_status_api,
    metrics_route,
    ops,
    ops_suppressions,
    pages,
    password_api,
    password_pages,
    registered_page,
    signin_api,
    signin_pages,
    verification_pages,
)
from backend.web.body_limit import BodyLimit
from backend.web.deps import WebContext, get_web_context
from backend.web.docs import docs_router
from backend.web.head import HeadAsGet
from backend.web.hosts import AllowedHosts
from backend.web.ratelimit import RateLimited
from backend.web.rendering import render_form, templates
from backend.web.request_id import RequestIdMiddleware
from backend.web.security_headers import SecurityHeaders
from backend.web.tracing import TracingMiddleware

STATIC_DIR = Path(__file__).resolve().parent / "web" / "static"

log = logging.getLogger(__name__)


class App(FastAPI):
    def build_middleware_stack(self) -> ASGIApp:
        # Around Starlette's error middleware, which `add_middleware` cannot reach: its
        # 500 for an error raised in a handler carries X-Request-ID like any response.
        # The request's span (when traces are on) covers the same, and carries the id.
        return RequestIdMiddleware(TracingMiddleware(super().build_middleware_stack()))


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    configure_logging(settings.log_level, log_format=settings.log_lines)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # Before any work, so that recovered jobs are traced too; nothing without the
        # OTel packages and OTEL_EXPORTER_OTLP_ENDPOINT.
        tracing.start()
        context = AppContext.build(settings)
        app.state.context = context
        app.state.web = WebContext.build(context)
        _freeze_startup_objects()
        if settings.job_worker_enabled:
            # Recovery first thing: work a stopped server left unfinished runs now.
            context.runner.start()
        try:
            yield
        finally:
            await context.close()
            # Last, so the spans of the jobs finished while closing are sent too.
            await asyncio.to_thread(tracing.stop)

    docs = settings.api_docs
    app = App(
        title="Welcome mail",
        summary="Register users; the welcome email and the audit trail follow in the background.",
        lifespan=lifespan,
        # Off outside development unless API_DOCS_ENABLED: a map of the API for nobody's use.
        openapi_url="/openapi.json" if docs else None,
        # FastAPI's pages start with inline scripts, which the CSP refuses: /docs is served
        # by docs_router instead, and /redoc not at all (see backend/web/docs.py).
        docs_url=None,
        redoc_url=None,
        swagger_ui_oauth2_redirect_url=None,
    )
    if docs:
        app.include_router(docs_router(openapi_url="/openapi.json"))
    app.include_router(pages.router)
    app.include_router(registered_page.router)
    app.include_router(verification_pages.router)
    app.include_router(signin_pages.router)
    app.include_router(password_pages.router)
    app.include_router(email_change_pages.router)
    app.include_router(api.router)
    app.include_router(signin_api.router)
    app.include_router(mail_status_api.router)
    app.include_router(password_api.router)
    app.include_router(email_change_api.router)
    app.include_router(health.router)
    app.include_router(metrics_route.router)
    if settings.ops_enabled:
        # Without OPS_PASSWORD, /ops does not exist (404), rather than asking for a password.
        app.include_router(ops.router)
        app.include_router(ops_suppressions.router)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    # Each add wraps the ones before it: the Host is checked first, then the body's
    # size, both before anything is read or routed.
    app.add_middleware(HeadAsGet)
    app.add_middleware(BodyLimit)
    app.add_middleware(AllowedHosts, allowed=settings.allowed_host_names)
    # Outermost but for Starlette's error middleware, so the exception handlers' pages
    # (busy, unavailable) and the refusals above get the headers too.
    app.add_middleware(SecurityHeaders, hsts=settings.cookies_secure)
    app.add_exception_handler(RequestValidationError, _validation_failed)
    app.add_exception_handler(HTTPException, _http_error)
    app.add_exception_handler(DBAPIError, _database_unavailable)
    app.add_exception_handler(OSError, _database_unavailable)
    app.add_exception_handler(PoolTimeout, _database_unavailable)
    app.add_exception_handler(HashingOverloaded, _overloaded)
    app.add_exception_handler(RateLimited, _rate_limited)
    app.add_exception_handler(RateLimitStorageUnavailable, _limits_unavailable)
    return app


_startup_frozen = False


def _freeze_startup_objects() -> None:
    """What exists once the app has started (modules, routes, templates, settings) lives
    as long as the process: frozen, the collector's full passes no longer walk it.
    Unfrozen, a full pass took 50-90 ms under load (measured), stalling every request at
    once. Once per process: frozen objects are never collected, and a process that makes
    many apps (the tests) would keep every one of them."""
    global _startup_frozen
    if not _startup_frozen:
        _startup_frozen = True
        gc.collect()
        gc.freeze()


async def _validation_failed(request: Request, exc: Exception) -> Response:
    # FastAPI's default echoes each rejected value, which would send a password back.
    assert isinstance(exc, RequestValidationError)
    endpoint = request.scope.get("endpoint")
    # An invalid body counts against the client's limit as a valid one does: otherwise
    # malformed requests, each parsed at our cost, would be free and without end.
    web = get_web_context(request)
    limits = {
        api.register_user: web.register_limit,
        api.resend_verification: web.resend_limit,
        signin_api.issue_token: web.signin_limit,
        password_api.forgot_password: web.password_reset_limit,
    }
    if endpoint in limits:
        limit = limits[endpoint]
        try:
            await limit.check(request, channel="api")
        except RateLimited as refused:
            return await _rate_limited(request, refused)
    if endpoint is api.register_user:
        # The API's field errors never reach the route: counted here, where they are answered.
        metrics.registration("api", "invalid")
    errors = [{k: v for k, v in error.items() if k != "input"} for error in exc.errors()]
    return JSONResponse({"detail": jsonable_encoder(errors)}, status_code=422)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    cause = exc.__cause__
    if exc.status_code == 400 and isinstance(cause, UnicodeDecodeError):
        # FastAPI answers a JSON body that is not UTF-8 with a bare 400, but one that is
        # not JSON with a 422: both are the same mistake to a client, so the same answer.
        error = {
            "type": "json_invalid",
            "loc": ["body", cause.start],
            "msg": "JSON decode error",
            "ctx": {"error": "the body is not UTF-8"},
        }
        return JSONResponse({"detail": [error]}, status_code=422)
    return await http_exception_handler(request, exc)


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


async def _rate_limited(request: Request, exc: Exception) -> Response:
    # A form post sees its form again, with what was entered and how long to wait; the
    # API (and the operator page's basic auth, which has no form) gets JSON.
    assert isinstance(exc, RateLimited)
    headers = {"Retry-After": str(exc.retry_after)}
    if exc.form is not None:
        csrf = get_web_context(request).csrf
        return render_form(request, csrf, exc.form, status_code=429, headers=headers)
    return JSONResponse({"detail": exc.detail}, status_code=429, headers=headers)


async def _limits_unavailable(request: Request, exc: Exception) -> Response:
    # Fail closed: a limit that cannot count is not let through (with the Postgres
    # default, a database that cannot count could not register anyone either).
    log.error("request refused: %s", exc)
    return _try_later(request, retry_after=5, page="unavailable.html")


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


_app: FastAPI | None = None


def __getattr__(name: str) -> FastAPI:
    global _app
    if name != "app":
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    if _app is None:
        _app = create_app(settings_or_exit())
    return _app
