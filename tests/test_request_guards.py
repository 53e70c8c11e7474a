"""What the outside probe found at the edge of the app: bodies over 64 KiB (413 before
anything is parsed), Host headers the app is not served under (400, never a redirect to
them), and HEAD (answered wherever GET is). Through a real uvicorn: the limits are about
what reaches the process, not what an in-process client sends."""

import asyncio
import json
import socket
from collections.abc import AsyncIterator

import httpx
import pytest
from pydantic import SecretStr
from sqlalchemy.ext.asyncio import AsyncEngine

from backend.devstack.app_process import AppProcess
from backend.settings import Settings
from backend.web.body_limit import MAX_BODY_BYTES
from backend.web.hosts import host_allowed, host_name
from tests.support.helpers import PASSWORD, rows, user_json


@pytest.fixture
async def app(settings: Settings) -> AsyncIterator[AppProcess]:
    with AppProcess(settings) as app:
        yield app


@pytest.fixture
async def http(app: AppProcess) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=app.url, timeout=30) as client:
        yield client


def padded_registration(size: int) -> bytes:
    body = json.dumps({**user_json("ada"), "padding": ""}).encode()
    return body.replace(b'"padding": ""', b'"padding": "' + b"x" * (size - len(body)) + b'"')


async def test_a_body_over_64_kib_is_refused_before_it_is_parsed(
    http: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    headers = {"content-type": "application/json"}
    big = padded_registration(MAX_BODY_BYTES + 1)
    response = await http.post("/api/register", content=big, headers=headers)
    assert response.status_code == 413
    assert "x-request-id" in response.headers
    # Sent in chunks with no Content-Length: refused too, once it passes the limit.

    async def chunks() -> AsyncIterator[bytes]:
        for start in range(0, len(big), 8192):
            yield big[start : start + 8192]

    streamed = await http.post("/api/register", content=chunks(), headers=headers)
    assert streamed.status_code == 413
    assert await rows(engine, "SELECT id FROM users") == []


async def test_a_body_just_under_the_limit_still_registers(
    http: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    body = padded_registration(MAX_BODY_BYTES)
    headers = {"content-type": "application/json"}
    response = await http.post("/api/register", content=body, headers=headers)
    assert response.status_code == 201, response.text

    async def chunks() -> AsyncIterator[bytes]:
        small = json.dumps(user_json("bob")).encode()
        yield small[:10]
        yield small[10:]

    assert (await http.post("/api/register", content=chunks(), headers=headers)).status_code == 201
    assert len(await rows(engine, "SELECT id FROM users")) == 2


async def test_a_form_with_a_large_file_part_is_refused(http: httpx.AsyncClient) -> None:
    files = {"upload": ("big.bin", b"\0" * (2 * MAX_BODY_BYTES), "application/octet-stream")}
    data = {"username": "ada", "email": "ada@example.com", "password": PASSWORD}
    response = await http.post("/register", data=data, files=files)
    assert response.status_code == 413


def raw_request(port: int, request: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=30) as connection:
        connection.sendall(request)
        received = b""
        while chunk := connection.recv(65536):
            received += chunk
            if b"\r\n\r\n" in received:
                break
    return received


async def test_a_huge_header_is_refused(app: AppProcess) -> None:
    request = b"GET /livez HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: " + b"a" * (1 << 20) + b"\r\n\r\n"
    answer = await asyncio.to_thread(raw_request, app.port, request)
    assert answer.split(b"\r\n", 1)[0].split(b" ")[1] in {b"400", b"431"}, answer[:200]


@pytest.mark.parametrize(
    ("host", "allowed"),
    [
        ("testserver", True),
        ("TestServer:80", True),
        ("127.0.0.1:8000", True),
        ("[::1]:8000", True),
        ("evil.example", False),
        ("testserver.evil.example", False),
        ("", False),
    ],
)
def test_host_names(host: str, allowed: bool) -> None:
    names = frozenset({"testserver", "127.0.0.1", "::1"})
    assert host_allowed(host_name(host), names) is allowed


def test_wildcards() -> None:
    assert host_allowed("a.example.com", frozenset({"*.example.com"}))
    assert not host_allowed("example.com", frozenset({"*.example.com"}))
    assert not host_allowed("badexample.com", frozenset({"*.example.com"}))
    assert host_allowed("anything", frozenset({"*"}))


async def test_another_host_gets_400_and_never_a_redirect_to_it(http: httpx.AsyncClient) -> None:
    for path in ["/register/", "/register", "/api/register", "/docs", "/nothing"]:
        response = await http.get(path, headers={"Host": "evil.example"})
        assert response.status_code == 400, path
        assert "evil.example" not in response.headers.get("location", "")
        assert "evil.example" not in response.text
    # Its own name still gets the redirect, to itself.
    redirect = await http.get("/register/", headers={"Host": "testserver"})
    assert redirect.status_code in {307, 404}
    assert "evil" not in redirect.headers.get("location", "")


async def test_probes_answer_any_host(http: httpx.AsyncClient) -> None:
    for path in ["/healthz", "/livez"]:
        assert (await http.get(path, headers={"Host": "10.1.2.3"})).status_code == 200


async def test_head_works_wherever_get_does(http: httpx.AsyncClient) -> None:
    for path in ["/healthz", "/livez", "/register", "/verify/resend", "/static/app.css"]:
        get = await http.get(path)
        head = await http.head(path)
        assert head.status_code == get.status_code == 200, path
        assert head.content == b""
        assert head.headers["content-type"] == get.headers["content-type"]
        assert "x-request-id" in head.headers
    assert (await http.head("/api/register")).status_code == 405


def test_settings_default_hosts() -> None:
    production = Settings(
        _env_file=None, secret_key=SecretStr("x" * 40), app_base_url="https://register.example"
    )
    assert production.allowed_host_names == {"register.example"}
    development = Settings(
        _env_file=None, environment="development", allowed_hosts="Other.Example, *.cdn.example"
    )
    assert development.allowed_host_names == {
        "localhost",
        "127.0.0.1",
        "::1",
        "other.example",
        "*.cdn.example",
    }
