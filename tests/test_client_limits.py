"""Who counts as one client, through a real uvicorn: the peer, the address a trusted proxy
saw, never an X-Forwarded-For from anyone else; IPv6 by /64. Retry-After is when to retry,
and counters whose period is over are swept."""

import asyncio
import itertools
import os

import httpx
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from backend.devstack.app_process import AppProcess
from backend.settings import Settings
from tests.support.helpers import csrf_token, rows, user_json

_names = itertools.count()


def client(url: str, *, local_address: str | None = None) -> httpx.AsyncClient:
    """A client connecting from `local_address` (anywhere in 127.0.0.0/8 is this host)."""
    transport = httpx.AsyncHTTPTransport(local_address=local_address)
    return httpx.AsyncClient(base_url=url, transport=transport, timeout=30)


async def attempt(http: httpx.AsyncClient, forwarded_for: str | None = None) -> int:
    headers = {"x-forwarded-for": forwarded_for} if forwarded_for else {}
    name = f"user{os.getpid()}y{next(_names)}"
    response = await http.post("/api/register", json=user_json(name), headers=headers)
    return response.status_code


async def test_a_trusted_proxy_is_believed_and_nobody_else(settings: Settings) -> None:
    app_settings = settings.model_copy(
        update={"register_rate_limit": "2/minute", "trusted_proxies": "127.0.0.1"}
    )
    with AppProcess(app_settings) as app:
        async with (
            client(app.url, local_address="127.0.0.1") as proxy,
            client(app.url, local_address="127.0.0.2") as stranger,
        ):
            behind_proxy = [await attempt(proxy, "198.51.100.7") for _ in range(3)]
            # The client wrote the left part itself: the proxy's own entry is what counts.
            spoofed = await attempt(proxy, "203.0.113.99, 198.51.100.7")
            neighbour = await attempt(proxy, "198.51.100.8")
            # Not a trusted proxy: whatever it forwards, it is one client.
            direct = [await attempt(stranger, f"192.0.2.{i}") for i in range(3)]

    assert behind_proxy == [201, 201, 429]
    assert spoofed == 429
    assert neighbour == 201
    assert direct == [201, 201, 429]


async def test_without_trusted_proxies_forwarded_for_is_ignored(settings: Settings) -> None:
    # uvicorn itself would believe loopback's X-Forwarded-For; AppProcess runs it, as the
    # image does, with --no-proxy-headers.
    with AppProcess(settings.model_copy(update={"register_rate_limit": "2/minute"})) as app:
        async with client(app.url) as http:
            answers = [await attempt(http, f"198.51.100.{i}") for i in range(3)]
    assert answers == [201, 201, 429]


async def test_ipv6_clients_are_one_client_per_64(settings: Settings) -> None:
    app_settings = settings.model_copy(
        update={"register_rate_limit": "2/minute", "trusted_proxies": "::1"}
    )
    with AppProcess(app_settings, host="::1") as app:
        async with client(app.url) as proxy:
            same_64 = [
                await attempt(proxy, address)
                for address in ("2001:db8:1:2::1", "2001:db8:1:2:ffff::9", "2001:db8:1:2:abc::1")
            ]
            next_64 = await attempt(proxy, "2001:db8:1:3::1")
            # The proxy's own requests: ::1, an IPv6 peer like any other.
            own = [await attempt(proxy) for _ in range(3)]

    assert same_64 == [201, 201, 429]
    assert next_64 == 201
    assert own == [201, 201, 429]


async def test_retry_after_is_when_the_next_attempt_gets_in(settings: Settings) -> None:
    # A window well beyond two registrations on a loaded machine (Argon2: up to 2.5 s each
    # seen under CI load), so that the third is refused.
    with AppProcess(settings.model_copy(update={"register_rate_limit": "2/10seconds"})) as app:
        async with client(app.url) as http:
            assert [await attempt(http), await attempt(http)] == [201, 201]
            refused = await http.post("/api/register", json=user_json("waiting"))
            token = csrf_token((await http.get("/register")).text)
            form = await http.post("/register", data={"csrf_token": token, **user_json("form")})
            wait = int(refused.headers["retry-after"])
            await asyncio.sleep(wait)
            after = await attempt(http)

    assert refused.status_code == 429 and 1 <= wait <= 10
    assert "Too many registration attempts" in refused.json()["detail"]
    assert form.status_code == 429 and 1 <= int(form.headers["retry-after"]) <= 10
    assert "Too many attempts" in form.text and 'value="form"' in form.text
    assert after == 201


async def test_counters_whose_period_is_over_are_swept(
    settings: Settings, engine: AsyncEngine
) -> None:
    # What a limit hit an hour ago leaves behind, in the real table.
    async with engine.begin() as connection:
        await connection.execute(
            text(
                "INSERT INTO rate_limit_counters (name, key, hits, expires_at) "
                "VALUES ('register', 'stale', ARRAY[now() - interval '1 hour'], "
                "now() - interval '59 minutes')"
            )
        )
    with AppProcess(settings.model_copy(update={"register_rate_limit": "5/minute"})) as app:
        async with client(app.url) as http:
            assert await attempt(http) == 201  # a process sweeps after its first hit

    left = await rows(engine, "SELECT name, key FROM rate_limit_counters ORDER BY name")
    assert [row["name"] for row in left] == ["mail-to", "register"]
    assert "stale" not in {row["key"] for row in left}
    # Keyed hashes only: neither the client's address nor the email address is stored.
    assert all(len(row["key"]) == 32 for row in left)


async def test_invalid_requests_count_against_the_limit(settings: Settings) -> None:
    limited = settings.model_copy(
        update={"register_rate_limit": "2/minute", "resend_rate_limit": "2/minute"}
    )
    with AppProcess(limited) as app:
        async with client(app.url) as http:
            headers = {"content-type": "application/json"}
            not_json = await http.post("/api/register", content=b"{", headers=headers)
            invalid = await http.post("/api/register", json={"username": "x"})
            valid = await attempt(http)
            resends = [
                (await http.post("/api/verification/resend", json={"email": email})).status_code
                for email in ["not an address", "ada@example.com", "ada@example.com"]
            ]

    assert (not_json.status_code, invalid.status_code, valid) == (422, 422, 429)
    assert resends == [422, 202, 429]
