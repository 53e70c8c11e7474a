"""MAIL_SEND_RATE caps what one process hands to the relay, across all its lanes,
measured where it counts: at the SMTP server."""

from sqlalchemy.ext.asyncio import AsyncEngine

from backend.settings import Settings
from tests.support.durability import drain_once, queue_backlog
from tests.support.mailhog import MailHog
from tests.test_relay_outage import arrived_at

RATE = 5  # per second
BACKLOG = 20


async def test_the_send_rate_holds_across_lanes_at_the_server(
    settings: Settings, engine: AsyncEngine, mailhog: MailHog
) -> None:
    await queue_backlog(engine, BACKLOG)
    assert (
        await drain_once(
            settings.model_copy(
                update={
                    "mail_send_rate": f"{RATE}/second",
                    "job_concurrency": 4,
                    "job_batch_size": 5,
                }
            )
        )
        == BACKLOG
    )

    times = sorted(arrived_at(m) for m in await mailhog.wait_for(BACKLOG))
    assert len(times) == BACKLOG
    # In any one-second window the server saw at most RATE messages (one more for the
    # jitter between our clock and the server's receipt)...
    busiest = max(sum(1 for t in times if start <= t < start + 1) for start in times)
    assert busiest <= RATE + 1, f"{busiest} messages within one second"
    # ...so the backlog took at least (BACKLOG - RATE) / RATE seconds: four lanes did not
    # multiply the rate.
    assert times[-1] - times[0] >= (BACKLOG - RATE) / RATE - 0.2
