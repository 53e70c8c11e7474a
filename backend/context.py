"""Everything the app builds once at start-up, shared by requests and background work."""

from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from backend.accounts.passwords import PasswordHasher
from backend.accounts.tokens import VerificationTokens
from backend.accounts.welcome_email import KIND as WELCOME_EMAIL_KIND
from backend.accounts.welcome_email import WelcomeEmailHandler
from backend.audit.job_kind import KIND as AUDIT_KIND
from backend.audit.job_kind import AuditHandler
from backend.db import create_engine, create_health_engine, create_sessionmaker
from backend.jobs.runner import JobRunner, RunnerConfig
from backend.mail.render import EmailRenderer
from backend.mail.sender import MailSender, SmtpSettings
from backend.settings import Settings

TEMPLATES_DIR = Path(__file__).resolve().parent.parent / "templates"


@dataclass(frozen=True)
class AppContext:
    settings: Settings
    engine: AsyncEngine
    health_engine: AsyncEngine
    sessionmaker: async_sessionmaker[AsyncSession]
    tokens: VerificationTokens
    hasher: PasswordHasher
    sender: MailSender
    runner: JobRunner

    @classmethod
    def build(cls, settings: Settings) -> "AppContext":
        engine = create_engine(
            settings.database_url, pool_timeout=settings.database_pool_timeout_seconds
        )
        sessionmaker = create_sessionmaker(engine)
        tokens = VerificationTokens(
            settings.secret_key.get_secret_value(),
            max_age_seconds=settings.verification_max_age_seconds,
        )
        sender = MailSender(
            SmtpSettings(
                server=settings.mail_server,
                port=settings.mail_port,
                sender=settings.mail_from,
                sender_name=settings.mail_from_name,
                username=settings.mail_username,
                password=settings.mail_password.get_secret_value(),
                starttls=settings.mail_starttls,
                ssl_tls=settings.mail_ssl_tls,
                timeout_seconds=settings.mail_timeout_seconds,
                send_rate=settings.mail_send_rate,
                probe_seconds=settings.mail_relay_probe_seconds,
                idle_seconds=settings.mail_connection_idle_seconds,
            ),
            status_sessionmaker=sessionmaker,
        )
        welcome = WelcomeEmailHandler(
            sessionmaker=sessionmaker,
            sender=sender,
            renderer=EmailRenderer(TEMPLATES_DIR),
            tokens=tokens,
            app_base_url=settings.app_base_url,
            batch_size=settings.mail_batch_size,
        )
        runner = JobRunner(
            sessionmaker=sessionmaker,
            handlers={WELCOME_EMAIL_KIND: welcome, AUDIT_KIND: AuditHandler()},
            config=RunnerConfig(
                lease_seconds=settings.job_lease_seconds,
                poll_seconds=settings.job_poll_seconds,
                batch_size=settings.job_batch_size,
                retry_base_seconds=settings.job_retry_base_seconds,
                retry_cap_seconds=settings.job_retry_cap_seconds,
                max_age_hours=settings.job_max_age_hours,
                shutdown_grace_seconds=settings.job_shutdown_grace_seconds,
                retention_days=settings.job_retention_days,
                concurrency=settings.job_concurrency,
            ),
        )
        # The moment the relay answers again, everything it held is due: look now.
        sender.relay.on_available(runner.wake)
        hasher = PasswordHasher(
            workers=settings.password_hash_workers or None,
            queue_limit=settings.register_queue_limit,
        )
        return cls(
            settings=settings,
            engine=engine,
            health_engine=create_health_engine(settings.database_url),
            sessionmaker=sessionmaker,
            tokens=tokens,
            hasher=hasher,
            sender=sender,
            runner=runner,
        )

    async def close(self) -> None:
        await self.runner.stop()
        await self.sender.close()
        self.hasher.close()
        await self.engine.dispose()
        await self.health_engine.dispose()
