"""Benchmark: what the relay's state does to users and to delivery.

- Registration latency with the relay frozen (it accepts connections and never answers)
  against live: the email is background work, so a registration must not wait for it.
- After an outage (the relay refusing connections while registrations arrive), the delay
  from the relay's return to the last held email being in the inbox, at default settings.

Both run the app as a real `uvicorn` process with the relay behind the test proxy.
"""

import asyncio
import itertools
import statistics
import time
from datetime import datetime

import httpx
from pydantic import SecretStr

from backend.devstack.app_process import AppProcess
from backend.devstack.smtp_proxy import SmtpProxy
from backend.settings import Settings

REGISTRATIONS = 40
OUTAGE_EMAILS = 50
OUTAGE_SECONDS = 20
_names = itertools.count()


async def _register_one(client: httpx.AsyncClient) -> float:
    name = f"relay{next(_names)}"
    body = {"username": name, "email": f"{name}@example.com", "password": "benchmark pw"}
    started = time.perf_counter()
    response = await client.post("/api/register", json=body)
    assert response.status_code == 201, response.text
    return time.perf_counter() - started


async def _latencies(url: str, count: int) -> list[float]:
    async with httpx.AsyncClient(base_url=url, timeout=60) as client:
        return [await _register_one(client) for _ in range(count)]


async def _inbox_total(inbox: httpx.AsyncClient) -> int:
    return int((await inbox.get("/api/v2/messages", params={"limit": 1})).json()["total"])


async def _last_arrival(inbox: httpx.AsyncClient) -> float:
    items = (await inbox.get("/api/v2/messages", params={"limit": 1})).json()["items"]
    return datetime.fromisoformat(items[0]["Created"]).timestamp()


def _app_settings(base: Settings, port: int) -> Settings:
    return base.model_copy(
        update={
            "mail_port": port,
            "register_rate_limit": "",  # one client address sends everything here
            "environment": "test",
            "secret_key": SecretStr("benchmark-secret-key-not-for-production"),
        }
    )


async def frozen_against_live(base: Settings, smtp_port: int) -> tuple[list[float], list[float]]:
    with SmtpProxy("127.0.0.1", smtp_port) as proxy:
        # No connection kept between emails: each email meets the relay as it is now.
        settings = _app_settings(base, proxy.port).model_copy(
            update={"mail_connection_idle_seconds": 0.0}
        )
        with AppProcess(settings) as app:
            live = await _latencies(app.url, REGISTRATIONS)
            proxy.pause()
            frozen = await _latencies(app.url, REGISTRATIONS)
            proxy.resume()
            app.delete_log()
    return live, frozen


async def return_delay(base: Settings, smtp_port: int, inbox: httpx.AsyncClient) -> float:
    """Seconds from the relay's return to the last held email arriving (inbox clock)."""
    await inbox.delete("/api/v1/messages")
    with SmtpProxy("127.0.0.1", smtp_port) as proxy:
        proxy.down()
        with AppProcess(_app_settings(base, proxy.port)) as app:
            await _latencies(app.url, OUTAGE_EMAILS)
            await asyncio.sleep(OUTAGE_SECONDS)
            returned = time.time()
            proxy.up()
            deadline = time.monotonic() + 120
            while await _inbox_total(inbox) < OUTAGE_EMAILS:
                assert time.monotonic() < deadline, "the held emails did not arrive"
                await asyncio.sleep(0.02)
            app.delete_log()
    return await _last_arrival(inbox) - returned


async def run(base: Settings, inbox_url: str) -> str:
    smtp_port = base.mail_port
    live, frozen = await frozen_against_live(base, smtp_port)
    print(
        f"registration p50 live {statistics.median(live) * 1000:.0f} ms, "
        f"frozen {statistics.median(frozen) * 1000:.0f} ms",
        flush=True,
    )
    async with httpx.AsyncClient(base_url=inbox_url, timeout=30) as inbox:
        delay = await return_delay(base, smtp_port, inbox)
    print(f"relay return to last delivery: {delay:.2f} s", flush=True)
    ms = 1000
    live_p50, frozen_p50 = statistics.median(live) * ms, statistics.median(frozen) * ms
    return "\n".join(
        [
            "## The relay: frozen, and back after an outage",
            "",
            __doc__.split("\n\n", 1)[1].strip(),
            "",
            "| measure | value |",
            "| --- | ---: |",
            f"| registration p50, SMTP live ({REGISTRATIONS} in a row) | {live_p50:.0f} ms |",
            f"| registration p50, SMTP frozen ({REGISTRATIONS} in a row) | {frozen_p50:.0f} ms "
            f"(**{frozen_p50 / live_p50:.2f}x** live) |",
            f"| {OUTAGE_EMAILS} emails held through a {OUTAGE_SECONDS} s outage: relay's return "
            f"→ last delivery | **{delay:.2f} s** |",
            "",
        ]
    )
