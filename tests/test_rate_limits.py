"""Rate limits as production sees them: real uvicorn processes sharing one database.

The limit holds across two app processes and across `uvicorn --workers 2`; trusted
proxies are believed and nobody else's X-Forwarded-For is; IPv6 clients share a /64.
"""

import asyncio
import itertools
import os
from collections.abc import Sequence
from pathlib import Path

import httpx
import pytest
from pydantic import SecretStr

from backend.devstack.app_process import AppProcess
from backend.settings import Settings
from tests.support.helpers import user_json
from tests.support.logs import ACCESS_BY_PID, pid_log_config

REDIS_URL = os.environ.get("TEST_REDIS_URL", "")
_names = itertools.count()


def limited(settings: Settings, limit: str, **overrides: object) -> Settings:
    return settings.model_copy(update={"register_rate_limit": limit, **overrides})


async def attempt(
    client: httpx.AsyncClient, *, forwarded_for: str | None = None
) -> tuple[int, int | None]:
    """One registration (a new user each time): its status and Retry-After."""
    headers = {"x-forwarded-for": forwarded_for} if forwarded_for else {}
    name = f"user{os.getpid()}x{next(_names)}"
    response = await client.post("/api/register", json=user_json(name), headers=headers)
    assert response.status_code in (201, 429), response.text
    retry_after = response.headers.get("retry-after")
    return response.status_code, int(retry_after) if retry_after else None


async def fresh_attempt(url: str) -> tuple[int, int | None]:
    async with httpx.AsyncClient(base_url=url, timeout=30) as client:
        return await attempt(client)


def statuses(answers: Sequence[tuple[int, int | None]]) -> list[int]:
    return [status for status, _ in answers]


@pytest.mark.parametrize("storage", ["postgres", "redis"])
async def test_the_limit_holds_across_two_app_processes(settings: Settings, storage: str) -> None:
    if storage == "redis" and not REDIS_URL:
        pytest.skip("TEST_REDIS_URL is not set (e.g. redis://127.0.0.1:6379)")
    # Keys of its own in a Redis that outlives the run: they are hashed with the secret.
    shared = limited(
        settings,
        "4/minute",
        rate_limit_storage_url=REDIS_URL if storage == "redis" else "",
        secret_key=SecretStr(f"rate-limit-test-{os.urandom(8).hex()}"),
    )
    with AppProcess(shared) as first, AppProcess(shared) as second:
        async with (
            httpx.AsyncClient(base_url=first.url, timeout=30) as a,
            httpx.AsyncClient(base_url=second.url, timeout=30) as b,
        ):
            answers = [await attempt(client) for client in (a, b, a, b, a, b)]

    assert statuses(answers) == [201, 201, 201, 201, 429, 429]
    assert all(wait is not None and 1 <= wait <= 60 for _, wait in answers[4:]), answers


@pytest.mark.parametrize(
    ("storage", "shared"),
    [("", True), ("memory://", False)],
    ids=["postgres", "memory-per-process-control"],
)
async def test_the_limit_holds_across_uvicorn_workers(
    settings: Settings, tmp_path: Path, storage: str, shared: bool
) -> None:
    """Fresh connections until both workers have answered; with shared counting the
    limit is let in once in all, whoever answered. The control counts in each process's
    memory (what this app did before), to show that the test can tell the difference."""
    app = AppProcess(
        limited(settings, "3/minute", rate_limit_storage_url=storage),
        workers=2,
        uvicorn_args=["--log-config", str(pid_log_config(tmp_path / "log.json"))],
    )
    with app:
        await _wait_for(lambda: app.log().count("Application startup complete") == 2)
        answers: list[tuple[int, int | None]] = []
        served: set[str] = set()
        # Bursts of fresh connections, which the kernel hands to whichever worker accepts.
        # Spread over seconds: a worker busy for a moment (its first requests, its start-up
        # work) leaves every connection of a quick run of bursts to the other.
        while len(served) < 2 or len(answers) < 8:
            assert len(answers) < 160, "one worker answered every request"
            answers += await asyncio.gather(*(fresh_attempt(app.url) for _ in range(4)))
            served = set(ACCESS_BY_PID.findall(app.log()))
            await asyncio.sleep(0.05)
    created = statuses(answers).count(201)
    if shared:
        assert created == 3, answers
    else:
        assert created > 3, answers  # each worker let in its own three


async def _wait_for(condition: object, within: float = 30) -> None:
    assert callable(condition)
    for _ in range(int(within * 10)):
        if condition():
            return
        await asyncio.sleep(0.1)
    raise AssertionError("condition not met in time")
