"""The counters behind every limit, against real storages: Postgres (the default), and the
`limits` storages (memory://, and Redis when TEST_REDIS_URL names one)."""

import asyncio
import os
import uuid
from collections.abc import AsyncIterator

import pytest
from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncEngine

from backend.ratelimits import Counter, Limiter, PostgresCounter, RateLimitStorageUnavailable
from backend.ratelimits.storage import LimitsCounter
from backend.settings import Settings
from tests.support.helpers import mail_limit, rows

REDIS_URL = os.environ.get("TEST_REDIS_URL", "")


@pytest.fixture(params=["postgres", "memory", "redis"])
async def counter(request: pytest.FixtureRequest, engine: AsyncEngine) -> AsyncIterator[Counter]:
    if request.param == "redis" and not REDIS_URL:
        pytest.skip("TEST_REDIS_URL is not set (e.g. redis://127.0.0.1:6379)")
    made: Counter
    if request.param == "postgres":
        made = PostgresCounter(engine)
    else:
        made = LimitsCounter("memory://" if request.param == "memory" else REDIS_URL)
    yield made
    await made.close()


def limiter(counter: Counter, limit: str) -> Limiter:
    # A name of its own: test workers share one Redis, and the table outlives a test.
    return Limiter(name=f"t-{uuid.uuid4().hex[:12]}", limit=limit, counter=counter, secret="s")


async def test_at_most_the_amount_per_key_and_a_sane_wait(counter: Counter) -> None:
    limit = limiter(counter, "3/minute")
    answers = [await limit.hit(key="a") for _ in range(5)]

    assert answers[:3] == [None, None, None]
    assert all(wait is not None and 58 <= wait <= 60 for wait in answers[3:]), answers
    assert await limit.hit(key="b") is None  # its own budget


async def test_once_the_wait_is_over_the_next_hit_is_let_in(counter: Counter) -> None:
    limit = limiter(counter, "2/5seconds")  # a window a loaded machine cannot outlast
    assert [await limit.hit(key="k"), await limit.hit(key="k")] == [None, None]
    wait = await limit.hit(key="k")
    assert wait is not None and 1 <= wait <= 5

    await asyncio.sleep(wait)
    # A moving window: the refused hit was not counted, and the first two have left it.
    assert await limit.hit(key="k") is None


async def test_spent_hits_count_past_the_limit(counter: Counter) -> None:
    limit = limiter(counter, "2/minute")
    for _ in range(3):
        await limit.spend(key="k")
    assert await limit.hit(key="k") is not None


async def test_concurrent_hits_on_one_key_let_in_exactly_the_amount(counter: Counter) -> None:
    limit = limiter(counter, "10/minute")
    answers = await asyncio.gather(*(limit.hit(key="burst") for _ in range(40)))
    assert answers.count(None) == 10


async def test_an_unreachable_storage_is_a_refusal_to_count() -> None:
    limit = limiter(LimitsCounter("redis://127.0.0.1:1"), "3/minute")
    with pytest.raises(RateLimitStorageUnavailable):
        await limit.hit(key="k")


async def test_a_storage_without_a_moving_window_is_refused_at_start() -> None:
    with pytest.raises(ValueError, match="moving window"):
        LimitsCounter("memcached://127.0.0.1:11211")


async def test_rows_hold_no_raw_key_and_leave_once_their_period_is_over(
    engine: AsyncEngine, clean: None
) -> None:
    counter = PostgresCounter(engine, sweep_every_seconds=0)
    limit = limiter(counter, "1/second")
    await limit.hit(key="198.51.100.7")
    await limit.hit(key="ada@example.com")
    stored = await rows(engine, "SELECT key, cardinality(hits) AS n FROM rate_limit_counters")
    assert [row["n"] for row in stored] == [1, 1]
    assert all(len(row["key"]) == 32 and "@" not in row["key"] for row in stored)
    assert "198.51.100.7" not in str(stored)

    await asyncio.sleep(1.2)
    await limit.hit(key="2001:db8::/64")  # the hit that sweeps

    assert await rows(engine, "SELECT key FROM rate_limit_counters") == [
        {"key": limit.digest("2001:db8::/64")}
    ]


async def test_one_mail_budget_per_mailbox_whatever_the_spelling(
    engine: AsyncEngine, settings: Settings
) -> None:
    limit = mail_limit(engine, settings.model_copy(update={"mail_per_address_limit": "3/hour"}))
    spellings = ["Ada@Bücher.example", "ada@xn--bcher-kva.example", "ADA@BÜCHER.EXAMPLE"]
    answers = [await limit.retry_after(address=address) for address in spellings]
    refused = await limit.retry_after(address="aDa@bücher.Example")

    assert answers == [None, None, None]
    assert refused is not None and 3500 < refused <= 3600
    assert await limit.retry_after(address="bob@bücher.example") is None


@pytest.mark.parametrize("name", ["register_rate_limit", "mail_per_address_limit"])
@pytest.mark.parametrize("value", ["0/minute", "three an hour"])
def test_a_limit_that_makes_no_sense_is_refused_at_start(
    name: str, value: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(name.upper(), value)
    with pytest.raises(ValidationError, match=name):
        Settings(_env_file=None)
