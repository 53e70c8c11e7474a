"""The dev inbox's HTTP side: MailHog's API (messages, search, Jim) and the web UI."""

from __future__ import annotations

from pathlib import Path

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from backend.devstack.inbox_guard import InboxGuard
from backend.devstack.inbox_headers import MESSAGE_CSP, InboxSecurityHeaders, with_base_target
from backend.devstack.inbox_store import MessageStore, StoredMessage
from backend.devstack.jim import Jim
from backend.devstack.jim_api import jim_routes
from backend.devstack.mailhog_format import decoded_bodies, matches

DEFAULT_LIMIT = 50
MAX_LIMIT = 250  # MailHog's own cap on ``limit``
UI_HTML_PATH = Path(__file__).with_name("inbox_ui.html")
STATIC_DIR = Path(__file__).with_name("inbox_static")


def _int_param(request: Request, name: str, default: int) -> int:
    # MailHog silently falls back to the default for anything that isn't a positive integer.
    value = request.query_params.get(name, "")
    return int(value) if value.isdigit() and int(value) > 0 else default


def _page(request: Request, messages: list[StoredMessage]) -> JSONResponse:
    start = _int_param(request, "start", 0)
    limit = min(_int_param(request, "limit", DEFAULT_LIMIT), MAX_LIMIT)
    page = messages[start : start + limit]
    return JSONResponse(
        {
            "total": len(messages),
            "count": len(page),
            "start": start,
            "items": [m.message for m in page],
        }
    )


def create_app(store: MessageStore, jim: Jim, *, listen_host: str = "127.0.0.1") -> Starlette:
    ui_html = UI_HTML_PATH.read_text(encoding="utf-8")

    def find(request: Request) -> StoredMessage:
        stored = store.get(request.path_params["id"])
        if stored is None:
            raise HTTPException(404, "message not found")
        return stored

    async def index(request: Request) -> HTMLResponse:
        return HTMLResponse(ui_html)

    async def v2_messages(request: Request) -> JSONResponse:
        return _page(request, store.newest_first())

    async def v2_search(request: Request) -> JSONResponse:
        kind = request.query_params.get("kind", "")
        query = request.query_params.get("query", "")
        if kind not in ("from", "to", "containing") or not query:
            raise HTTPException(400, "kind must be from, to or containing, and query non-empty")
        found = [m for m in store.newest_first() if matches(m.message, kind, query)]
        return _page(request, found)

    async def v1_messages(request: Request) -> JSONResponse:
        return JSONResponse([m.message for m in store.newest_first()])

    async def v1_delete_all(request: Request) -> Response:
        store.clear()
        return Response(status_code=200)

    async def v1_message(request: Request) -> JSONResponse:
        return JSONResponse(find(request).message)

    async def v1_delete(request: Request) -> Response:
        if not store.delete(request.path_params["id"]):
            raise HTTPException(404, "message not found")
        return Response(status_code=200)

    async def v1_download(request: Request) -> Response:
        stored = find(request)
        return Response(
            stored.raw,
            media_type="message/rfc822",
            headers={"Content-Disposition": f'attachment; filename="{stored.id}.eml"'},
        )

    async def dev_parts(request: Request) -> JSONResponse:
        return JSONResponse(decoded_bodies(find(request).raw))

    async def dev_html(request: Request) -> HTMLResponse:
        html = decoded_bodies(find(request).raw)["html"]
        if html is None:
            raise HTTPException(404, "message has no HTML part")
        return HTMLResponse(
            with_base_target(html), headers={"Content-Security-Policy": MESSAGE_CSP}
        )

    return Starlette(
        routes=[
            Route("/", index),
            Route("/api/v2/messages", v2_messages),
            Route("/api/v2/search", v2_search),
            Route("/api/v1/messages", v1_messages),
            Route("/api/v1/messages", v1_delete_all, methods=["DELETE"]),
            Route("/api/v1/messages/{id}", v1_message),
            Route("/api/v1/messages/{id}", v1_delete, methods=["DELETE"]),
            Route("/api/v1/messages/{id}/download", v1_download),
            Route("/api/dev/messages/{id}/parts", dev_parts),
            Route("/api/dev/messages/{id}/html", dev_html),
            *jim_routes(jim),
            Mount("/static", StaticFiles(directory=STATIC_DIR), name="static"),
        ],
        middleware=[
            Middleware(InboxSecurityHeaders),
            Middleware(InboxGuard, listen_host=listen_host),
        ],
    )
