"""X-Request-ID on every response, whatever answered it, and stored with the jobs a
request queues (the app in-process; tests/test_logs.py follows the id through the logs
of a real uvicorn)."""

import re
import uuid
from collections.abc import AsyncIterator, Sequence
from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.routing import BaseRoute, Route

from backend.audit.job_kind import enqueue_audit
from backend.db import create_sessionmaker
from backend.settings import Settings
from tests.support.app_client import AppClient, app_client
from tests.support.helpers import rows, user_json
from tests.support.pages import overload_settings

GENERATED = re.compile(r"[0-9a-f]{32}")


@pytest.fixture
async def app(settings: Settings) -> AsyncIterator[AppClient]:
    """The app with its docs on, a resend limit of one a minute, and a route that raises."""
    settings = settings.model_copy(
        update={"api_docs_enabled": True, "resend_rate_limit": "1/minute"}
    )
    app = app_client(settings)

    async def broken() -> None:
        raise RuntimeError("a bug in a handler")

    app.app.add_api_route("/test-broken", broken)
    async with app:
        yield app


def client_of(app: AppClient) -> httpx.AsyncClient:
    # Errors raised in the app become its 500 answer, as with uvicorn, not a test error.
    transport = httpx.ASGITransport(app=app.app, raise_app_exceptions=False)
    return httpx.AsyncClient(transport=transport, base_url=app.base_url)


async def test_every_kind_of_response_carries_the_request_id(app: AppClient) -> None:
    resend = {"email": "nobody@example.com"}
    requests: list[tuple[str, str, dict[str, Any], int]] = [
        ("GET", "/livez", {}, 200),
        ("GET", "/register", {}, 200),
        ("GET", "/static/app.css", {}, 200),
        ("GET", "/docs", {}, 200),
        ("GET", "/openapi.json", {}, 200),
        ("GET", "/no-such-page", {}, 404),
        ("GET", "/static/no-such-file.css", {}, 404),
        ("DELETE", "/api/register", {}, 405),
        ("POST", "/api/register", {"json": {"username": "x"}}, 422),
        ("POST", "/api/register", {"content": b"{not json"}, 422),
        ("POST", "/api/register", {"content": b'"\xff"'}, 422),
        ("POST", "/register", {"data": user_json("formless")}, 403),  # no CSRF token
        ("POST", "/api/verification/resend", {"json": resend}, 202),
        ("POST", "/api/verification/resend", {"json": resend}, 429),
        ("GET", "/test-broken", {}, 500),
    ]
    async with client_of(app) as http:
        for method, path, extra, status in requests:
            chosen = f"test-{uuid.uuid4().hex[:12]}"
            sent = await http.request(method, path, headers={"X-Request-ID": chosen}, **extra)
            assert sent.status_code == status, (method, path, sent.text)
            assert sent.headers.get("x-request-id") == chosen, (method, path, sent.headers)
            made = await http.request(method, path, **extra)
            assert GENERATED.fullmatch(made.headers.get("x-request-id", "")), (method, path)


def get_paths(routes: Sequence[BaseRoute]) -> list[str]:
    """The GET paths without parameters, through included routers (which FastAPI keeps as
    routers of their own: `original_router`; the app includes them without a prefix)."""
    paths = []
    for route in routes:
        if (router := getattr(route, "original_router", None)) is not None:
            paths += get_paths(router.routes)
        elif isinstance(route, Route) and "GET" in (route.methods or ()):
            paths += [] if "{" in route.path else [route.path]
    return paths


async def test_every_route_of_the_app_answers_with_a_request_id(app: AppClient) -> None:
    """Whatever routes the app has (these, or ones added later), the header is on."""
    paths = get_paths(app.app.routes)
    assert {"/livez", "/healthz", "/register", "/verify", "/docs"} <= set(paths), paths
    async with client_of(app) as http:
        for path in paths:
            answer = await http.get(path, headers={"X-Request-ID": "every-route"})
            assert answer.headers.get("x-request-id") == "every-route", (path, answer.status_code)


async def test_a_503_carries_the_request_id(settings: Settings) -> None:
    with overload_settings(settings) as down:
        async with app_client(down) as http:
            health = await http.get("/healthz", headers={"X-Request-ID": "db-down-1"})
            registration = await http.post(
                "/api/register", json=user_json("dora"), headers={"X-Request-ID": "db-down-2"}
            )
    assert (health.status_code, health.headers["x-request-id"]) == (503, "db-down-1")
    assert (registration.status_code, registration.headers["x-request-id"]) == (503, "db-down-2")


@pytest.mark.parametrize(
    "sent",
    [
        "",
        "x" * 129,
        "two words",
        'quote"d',
        "line\tbreak",
        "naïve",
        "<script>",
    ],
    ids=["empty", "too-long", "space", "quote", "tab", "non-ascii", "angle-brackets"],
)
async def test_an_unsafe_request_id_is_replaced_by_a_new_one(
    client: httpx.AsyncClient, sent: str
) -> None:
    answer = await client.get("/livez", headers={b"X-Request-ID": sent.encode()})
    assert GENERATED.fullmatch(answer.headers["x-request-id"])


@pytest.mark.parametrize(
    "sent",
    [
        "0f8fad5b-d9cb-469f-a165-70867728950e",
        "Root=1-67891233-abcdef012345678912345678",
        "req_01HZX:worker.7/abc+def@edge",
        "x" * 128,
    ],
)
async def test_a_sane_request_id_is_kept(client: httpx.AsyncClient, sent: str) -> None:
    answer = await client.get("/livez", headers={"X-Request-ID": sent})
    assert answer.headers["x-request-id"] == sent


async def test_each_request_without_one_gets_its_own(client: httpx.AsyncClient) -> None:
    ids = {(await client.get("/livez")).headers["x-request-id"] for _ in range(5)}
    assert len(ids) == 5


async def test_the_jobs_a_request_queues_keep_its_id(
    client: httpx.AsyncClient, engine: AsyncEngine, settings: Settings
) -> None:
    registered = await client.post(
        "/api/register", json=user_json("ada"), headers={"X-Request-ID": "register-ada"}
    )
    assert registered.status_code == 201
    # The resend queues its jobs in its own SQL (one statement with the lookup).
    resent = await client.post("/api/verification/resend", json={"email": "ada@example.com"})
    assert resent.status_code == 202
    made = resent.headers["x-request-id"]
    # Work queued outside any request (the CLI, a script, the poller) has none.
    async with create_sessionmaker(engine)() as session:
        enqueue_audit(session, action="test.outside", user_id=None)
        await session.commit()

    jobs = await rows(engine, "SELECT kind, request_id FROM jobs ORDER BY id")
    assert [(job["kind"], job["request_id"]) for job in jobs] == [
        ("email.welcome", "register-ada"),
        ("audit.write", "register-ada"),
        ("email.verification", made),
        ("audit.write", made),
        ("audit.write", None),
    ]
