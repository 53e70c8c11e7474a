"""MAIL_SEND_RATE shared by every process: three `uvicorn` processes on one database hand
the relay no more than the rate together, as counted at the server; and the reservation
that shares it hands concurrent processes disjoint slots."""

import asyncio
from datetime import timedelta
from itertools import pairwise

from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker

from backend.devstack.app_process import AppProcess
from backend.mail.shared_pace import reserve
from backend.settings import Settings
from tests.support.durability import drain_once, queue_backlog, refusing_inserts, until_succeeded
from tests.support.mailhog import MailHog
from tests.test_relay_outage import arrived_at

RATE = 4  # per second, for the three processes together
BACKLOG = 32


async def test_three_processes_hand_the_relay_the_rate_together(
    settings: Settings, engine: AsyncEngine, mailhog: MailHog
) -> None:
    await queue_backlog(engine, BACKLOG)
    # Small batches over two lanes each, so that every process takes part of the backlog.
    app_settings = settings.model_copy(
        update={
            "mail_send_rate": f"{RATE}/second",
            "job_concurrency": 2,
            "job_batch_size": 2,
            "mail_batch_size": 2,
        }
    )
    apps = [AppProcess(app_settings) for _ in range(3)]
    try:
        await asyncio.gather(*(asyncio.to_thread(app.start) for app in apps))
        await until_succeeded(engine, BACKLOG, within=120)
    finally:
        for app in apps:
            app.stop()

    times = sorted(arrived_at(m) for m in await mailhog.wait_for(BACKLOG))
    assert len(times) == BACKLOG
    senders = [app for app in apps if "to the relay: 250" in app.log()]
    assert len(senders) >= 2, "the backlog was not shared: the test proves nothing"
    # In any one-second window the server saw at most RATE messages from all three (one
    # more for a slot woken late and the jitter between sending and the server's receipt)...
    busiest = max(sum(1 for t in times if start <= t < start + 1) for start in times)
    assert busiest <= RATE + 1, f"{busiest} messages within one second"
    # ...so the backlog took at least (BACKLOG - RATE) / RATE seconds: three processes
    # did not multiply the rate.
    assert times[-1] - times[0] >= (BACKLOG - RATE) / RATE - 0.3


async def test_concurrent_reservations_get_disjoint_slots(engine: AsyncEngine) -> None:
    sessions = async_sessionmaker(engine)
    block = 0.05

    async def reserver() -> list[tuple[float, float]]:
        taken = []
        for _ in range(25):
            async with sessions() as session, session.begin():
                ends, _now = await reserve(session, relay="disjoint:25", seconds=block)
            starts = ends - timedelta(seconds=block)
            taken.append((starts.timestamp(), ends.timestamp()))
        return taken

    first, second = await asyncio.gather(reserver(), reserver())
    blocks = sorted(first + second)
    assert len(blocks) == 50
    for (_, ends), (starts, _) in pairwise(blocks):
        assert starts >= ends - 1e-6, f"overlapping slots: {blocks}"


async def test_a_database_refusing_the_slots_leaves_each_process_its_own_pace(
    settings: Settings, engine: AsyncEngine, mailhog: MailHog
) -> None:
    await queue_backlog(engine, 10)
    # The claims and the records still work; only the slots' table refuses every write.
    async with refusing_inserts(engine, "mail_send_slots"):
        drained = await drain_once(
            settings.model_copy(
                update={"mail_send_rate": "5/second", "job_concurrency": 4, "job_batch_size": 5}
            )
        )
    assert drained == 10
    times = sorted(arrived_at(m) for m in await mailhog.wait_for(10))
    busiest = max(sum(1 for t in times if start <= t < start + 1) for start in times)
    assert busiest <= 5 + 1, f"{busiest} messages within one second"
