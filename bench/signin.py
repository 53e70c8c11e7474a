"""Benchmark: sign-ins under load, against the machine's own Argon2 verify ceiling.

Runs the app as a real `uvicorn` process and, side by side in one run:
- the verify ceiling: Argon2 verifications per second at the app's parameters, one
  thread per core, with nothing else running, just before and just after the app runs
  (the mean of the two is the ceiling);
- 16 clients signing in flat out through `POST /api/token` (each waits only the
  `Retry-After` of a 503), while `/healthz` is probed every 50 ms from a process of its
  own, against the same probe on the idle app;
- the answer time of an unknown account against a wrong password, interleaved one after
  the other on one client: the same answer should take the same time.
Returns Markdown for bench/RESULTS.md.
"""

import asyncio
import itertools
import statistics
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import aiohttp
from pydantic import SecretStr
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from backend.accounts.passwords import PasswordHasher
from backend.devstack.app_process import AppProcess
from backend.settings import Settings
from bench.load import CLIENTS, load_client, percentile, probe_health

PASSWORD = "benchmark password"
TIMING_PAIRS = 40


def verify_ceiling(seconds: float = 6.0) -> float:
    """Verifications per second at the app's parameters, one thread per core."""
    hasher = PasswordHasher()
    stored = hasher._hash.hash(PASSWORD)  # the very hasher the app runs
    deadline = time.perf_counter() + seconds

    def verify_until_deadline() -> int:
        count = 0
        while time.perf_counter() < deadline:
            hasher._hash.verify(PASSWORD, stored)
            count += 1
        return count

    started = time.perf_counter()
    with ThreadPoolExecutor(hasher.workers) as pool:
        total = sum(pool.map(lambda _: verify_until_deadline(), range(hasher.workers)))
    hasher.close()
    return total / (time.perf_counter() - started)


async def sign_in(client: aiohttp.ClientSession, login: str, password: str) -> tuple[int, float]:
    """Status and the Retry-After asked for (0 when none)."""
    form = {"username": login, "password": password}
    async with client.post("/api/token", data=form) as response:
        await response.read()
        return response.status, float(response.headers.get("Retry-After", 0))


@dataclass
class Burst:
    seconds: float
    codes: list[int] = field(default_factory=list)
    health_idle: list[float] = field(default_factory=list)
    health_busy: list[float] = field(default_factory=list)

    @property
    def per_second(self) -> float:
        return self.codes.count(200) / self.seconds


async def burst(url: str, login: str, seconds: float) -> Burst:
    result = Burst(seconds)
    async with load_client(url) as client:
        result.health_idle = await probe_health(url, 5)
        deadline = time.perf_counter() + seconds

        async def one_client() -> None:
            while time.perf_counter() < deadline:
                code, retry_after = await sign_in(client, login, PASSWORD)
                result.codes.append(code)
                await asyncio.sleep(min(retry_after, max(0.0, deadline - time.perf_counter())))

        busy = asyncio.create_task(probe_health(url, seconds - 1))
        await asyncio.gather(*(one_client() for _ in range(CLIENTS)))
        result.health_busy = await busy
    return result


async def unknown_against_wrong(url: str, login: str) -> tuple[list[float], list[float]]:
    """Answer times (s) of an unknown account and of a wrong password, interleaved."""
    unknown: list[float] = []
    wrong: list[float] = []
    names = itertools.count()
    async with aiohttp.ClientSession(url) as client:
        for _ in range(TIMING_PAIRS):
            for times, who in ((unknown, f"nobody{next(names)}"), (wrong, login)):
                started = time.perf_counter()
                code, _ = await sign_in(client, who, "not the password")
                times.append(time.perf_counter() - started)
                assert code == 401, code
    return unknown, wrong


async def _confirmed_user(url: str, database_url: str) -> str:
    async with aiohttp.ClientSession(url) as client:
        body = {"username": "bench", "email": "bench@example.com", "password": PASSWORD}
        async with client.post("/api/register", json=body) as response:
            assert response.status == 201, await response.text()
    engine = create_async_engine(database_url)
    async with engine.begin() as connection:
        await connection.execute(text("UPDATE users SET email_verified_at = now()"))
    await engine.dispose()
    return "bench"


async def run(base: Settings) -> str:
    ceilings = [await asyncio.to_thread(verify_ceiling)]
    print(f"argon2 verify ceiling: {ceilings[0]:.1f}/s", flush=True)
    settings = base.model_copy(
        update={
            "register_rate_limit": "",
            "signin_rate_limit": "",  # one client address and one account send everything
            "environment": "test",
            "secret_key": SecretStr("benchmark-secret-key-not-for-production"),
        }
    )
    app = AppProcess(settings)
    try:
        app.start()
        login = await _confirmed_user(app.url, settings.database_url)
        result = await burst(app.url, login, seconds=20)
        print(f"sign-ins: {result.per_second:.1f}/s", flush=True)
        await asyncio.sleep(2)
        unknown, wrong = await unknown_against_wrong(app.url, login)
    finally:
        app.stop()
        app.delete_log()
    ceilings.append(await asyncio.to_thread(verify_ceiling))
    return report(ceilings, result, unknown, wrong)


def report(ceilings: list[float], result: Burst, unknown: list[float], wrong: list[float]) -> str:
    ms = 1000
    ceiling = statistics.mean(ceilings)
    others = sorted({code for code in result.codes if code != 200})
    ratio = statistics.median(unknown) / statistics.median(wrong)
    rows = [
        "## Sign-ins under load",
        "",
        f"{CLIENTS} clients sign in flat out through `POST /api/token` for "
        f"{result.seconds:.0f} s (one confirmed account; `SIGNIN_RATE_LIMIT` off), against "
        "Argon2 verifications per second at the app's parameters, one thread per core, with "
        "nothing else running (measured before and after the app ran). Then 40 pairs of "
        "sign-ins, interleaved on one client: an unknown account, and a wrong password for "
        "a real one. Both are answered 401, and both should take one Argon2 verification.",
        "",
        "| measure | result | target |",
        "| --- | --- | --- |",
        f"| verify ceiling (before / after) | {ceilings[0]:.1f} / {ceilings[1]:.1f} per s | |",
        f"| sign-ins per second, {CLIENTS} clients | {result.per_second:.1f} | |",
        f"| against the ceiling | **{result.per_second / ceiling:.2f}** | ≥ 0.9 |",
        f"| other answers in the burst | {others or 'none'} | |",
        f"| `/healthz` p50 / p99 idle | {percentile(result.health_idle, 0.5) * ms:.1f} / "
        f"{percentile(result.health_idle, 0.99) * ms:.1f} ms | |",
        f"| `/healthz` p50 / p99 during the burst | "
        f"{percentile(result.health_busy, 0.5) * ms:.1f} / "
        f"**{percentile(result.health_busy, 0.99) * ms:.1f}** ms | p99 ≤ 25 ms |",
        f"| unknown account, median answer | {statistics.median(unknown) * ms:.1f} ms | |",
        f"| wrong password, median answer | {statistics.median(wrong) * ms:.1f} ms | |",
        f"| unknown against wrong | **{ratio:.2f}** | 0.9 to 1.1 |",
        "",
    ]
    return "\n".join(rows)
