"""Work a stopped server left unfinished is carried out when the app starts again."""

from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker

from backend.accounts.schemas import RegistrationIn
from backend.accounts.service import register
from backend.settings import Settings
from tests.support.app_client import app_client
from tests.support.durability import HASHER, until_succeeded
from tests.support.helpers import PASSWORD, mail_limit, rows
from tests.support.mailhog import MailHog


async def test_jobs_committed_but_never_run_are_run_at_start(
    settings: Settings, engine: AsyncEngine, mailhog: MailHog
) -> None:
    # What a server killed right after its commit leaves behind: the user and the jobs,
    # and no BackgroundTasks to run them.
    async with async_sessionmaker(engine, expire_on_commit=False)() as session:
        for name in ("left", "behind"):
            await register(
                session,
                data=RegistrationIn(username=name, email=f"{name}@example.com", password=PASSWORD),
                channel="api",
                sender_address=settings.mail_from,
                smtputf8=settings.mail_smtputf8,
                hasher=HASHER,
                mail_limit=mail_limit(engine, settings),
            )
    assert await mailhog.messages() == []

    # The poller's timer would first fire an hour after start, long after the waits below
    # give up (40 s at most): only the run at start can do this work.
    async with app_client(settings.model_copy(update={"job_poll_seconds": 3600})):
        await until_succeeded(engine, 4, within=20)
        mails = await mailhog.wait_for(2, within=20)

    assert sorted(m.to[0] for m in mails) == ["behind@example.com", "left@example.com"]
    actions = await rows(engine, "SELECT action FROM audit_log ORDER BY id")
    assert sorted(a["action"] for a in actions) == ["email.sent"] * 2 + ["user.registered"] * 2
