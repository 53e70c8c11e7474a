"""Everything the app builds once at start-up, shared by requests and background work."""

from dataclasses import dataclass
from datetime import timedelta
from functools import partial
from pathlib import Path

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from backend.accounts import (
    email_change_confirm_email,
    email_change_notice_email,
    email_change_taken_email,
    password_changed_email,
    password_reset_email,
    registration_notice,
    resend,
    welcome_email,
)
from backend.accounts import retention as accounts_retention
from backend.accounts.email_change_links import ChangeLinks
from backend.accounts.features import (
    AddressChange,
    EmailVerification,
    MailStatus,
    PasswordReset,
    Registration,
    SignIn,
    VerificationResend,
)
from backend.accounts.mail_limit import MailLimit
from backend.accounts.passwords import PasswordHasher
from backend.accounts.signin_limit import AccountSigninLimit
from backend.accounts.tokens import VerificationTokens
from backend.accounts.user_email import UserEmailHandler
from backend.audit.job_kind import KIND as AUDIT_KIND
from backend.audit.job_kind import AuditHandler
from backend.audit.retention import personal_data
from backend.db import (
    create_engine,
    create_health_engine,
    create_listener_engine,
    create_recorder_engine,
    create_sessionmaker,
)
from backend.jobs.handlers import Handler
from backend.jobs.retention import RetentionTask
from backend.jobs.runner import JobRunner, RunnerConfig
from backend.jobs.stats import QueueStats
from backend.jobs.wakeups import WakeupListener
from backend.mail.render import EmailRenderer
from backend.mail.sender import MailSender, SmtpSettings
from backend.observability import metrics
from backend.ratelimits import Counter, Limiter, build_counter
from backend.settings import Settings

TEMPLATES_DIR = Path(__file__).resolve().parent.parent / "templates"


@dataclass(frozen=True)
class AppContext:
    settings: Settings
    engine: AsyncEngine
    health_engine: AsyncEngine
    recorder_engine: AsyncEngine
    sessionmaker: async_sessionmaker[AsyncSession]
    tokens: VerificationTokens
    hasher: PasswordHasher
    sender: MailSender
    runner: JobRunner
    # Where every limit counts (Postgres unless RATE_LIMIT_STORAGE_URL says otherwise).
    rate_counter: Counter
    # REGISTER_RATE_LIMIT, per client (web/ratelimit.py makes the key from the request).
    register_limit: Limiter
    # RESEND_RATE_LIMIT, per client, whatever the address asked for.
    resend_limit: Limiter
    # SIGNIN_RATE_LIMIT per client (the per-login count is the SignIn service's).
    signin_limit: Limiter
    # PASSWORD_RESET_RATE_LIMIT per client (the per-address count is PasswordReset's).
    password_reset_limit: Limiter
    # MAIL_PER_ADDRESS_LIMIT: every path that queues an email to an address asks it first.
    mail_limit: MailLimit
    # The queue's figures for GET /metrics, read when scraped and cached a few seconds.
    queue_stats: QueueStats
    # The account features, each with its settings applied: a route makes one call.
    registration: Registration
    verification_resend: VerificationResend
    email_verification: EmailVerification
    sign_in: SignIn
    password_reset: PasswordReset
    address_change: AddressChange
    mail_status: MailStatus

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
        email_handler = partial(
            UserEmailHandler,
            sessionmaker=sessionmaker,
            sender=sender,
            renderer=EmailRenderer(TEMPLATES_DIR),
            tokens=tokens,
            app_base_url=settings.app_base_url,
            batch_size=settings.mail_batch_size,
        )
        reset_links = password_reset_email.ResetLinks(
            ttl_seconds=settings.password_reset_token_ttl, app_base_url=settings.app_base_url
        )
        confirm_links = ChangeLinks(
            purpose="confirm",
            lifetime_seconds=settings.email_change_link_hours * 3600,
            app_base_url=settings.app_base_url,
        )
        revert_links = ChangeLinks(
            purpose="revert",
            lifetime_seconds=settings.email_change_revert_days * 86400,
            app_base_url=settings.app_base_url,
        )
        # Each email is a kind of its own, defined with its feature; the queue knows none.
        handlers: dict[str, Handler] = {
            welcome_email.KIND: email_handler(template=welcome_email.TEMPLATE),
            # A resent link is not sent to someone who has confirmed since asking.
            resend.KIND: email_handler(template=resend.TEMPLATE, skip_verified=True),
            registration_notice.KIND: email_handler(template=registration_notice.TEMPLATE),
            # The reset link's token row is written when the email is sent.
            password_reset_email.KIND: email_handler(
                template=password_reset_email.TEMPLATE, send_time_values=reset_links
            ),
            password_changed_email.KIND: email_handler(template=password_changed_email.TEMPLATE),
            # An address change's links are rows too, written when their emails are sent.
            email_change_confirm_email.KIND: email_handler(
                template=email_change_confirm_email.TEMPLATE, send_time_values=confirm_links
            ),
            email_change_notice_email.KIND: email_handler(
                template=email_change_notice_email.TEMPLATE, send_time_values=revert_links
            ),
            email_change_taken_email.KIND: email_handler(
                template=email_change_taken_email.TEMPLATE
            ),
            AUDIT_KIND: AuditHandler(),
        }
        metrics.email_kinds(k for k, h in handlers.items() if isinstance(h, UserEmailHandler))
        recorder_engine = create_recorder_engine(settings.database_url)
        wakeups = None
        if settings.job_notify and settings.job_worker_enabled:
            wakeups = WakeupListener(create_listener_engine(settings.database_url))
        # The features' old rows, purged by the runner's retention rounds beside its jobs.
        retention_tasks: list[RetentionTask] = [
            *accounts_retention.dead_rows(revert_days=settings.email_change_revert_days)
        ]
        if settings.audit_personal_data_days:  # 0: kept forever
            retention_tasks.append(personal_data(older_than_days=settings.audit_personal_data_days))
        runner = JobRunner(
            sessionmaker=sessionmaker,
            record_sessionmaker=create_sessionmaker(recorder_engine),
            handlers=handlers,
            wakeups=wakeups,
            retention_tasks=retention_tasks,
            config=RunnerConfig(
                lease_seconds=settings.job_lease_seconds,
                poll_seconds=settings.job_poll_seconds,
                batch_size=settings.job_batch_size,
                retry_base_seconds=settings.job_retry_base_seconds,
                retry_cap_seconds=settings.job_retry_cap_seconds,
                max_age_hours=settings.job_max_age_hours,
                shutdown_grace_seconds=settings.job_shutdown_grace_seconds,
                retention_days=settings.job_retention_days,
                failed_retention_days=settings.job_failed_retention_days,
                purge_every_seconds=settings.job_purge_every_seconds,
                concurrency=settings.job_concurrency,
            ),
        )
        # The moment the relay answers again, everything it held is due: look now.
        sender.relay.on_available(runner.wake)
        rate_counter = build_counter(storage_url=settings.rate_limit_storage_url, engine=engine)
        secret = settings.secret_key.get_secret_value()

        def limiter(name: str, limit: str) -> Limiter:
            # Every limit counts in the one storage, its keys hashed with SECRET_KEY.
            return Limiter(name=name, limit=limit, counter=rate_counter, secret=secret)

        register_limit = limiter("register", settings.register_rate_limit)
        resend_limit = limiter("resend", settings.resend_rate_limit)
        signin_limit = limiter("signin", settings.signin_rate_limit)
        account_signin_limit = AccountSigninLimit(
            limiter("signin-account", settings.signin_rate_limit)
        )
        password_reset_limit = limiter("password-reset", settings.password_reset_rate_limit)
        password_reset_address_limit = limiter(
            "password-reset-to", settings.password_reset_rate_limit
        )
        mail_limit = MailLimit(limiter("mail-to", settings.mail_per_address_limit))
        hasher = PasswordHasher(
            workers=settings.password_hash_workers or None,
            queue_limit=settings.register_queue_limit,
        )
        return cls(
            settings=settings,
            engine=engine,
            health_engine=create_health_engine(settings.database_url),
            recorder_engine=recorder_engine,
            sessionmaker=sessionmaker,
            tokens=tokens,
            hasher=hasher,
            sender=sender,
            runner=runner,
            rate_counter=rate_counter,
            register_limit=register_limit,
            resend_limit=resend_limit,
            signin_limit=signin_limit,
            password_reset_limit=password_reset_limit,
            mail_limit=mail_limit,
            queue_stats=QueueStats(sessionmaker, kinds=tuple(handlers)),
            registration=Registration(
                sender_address=settings.mail_from,
                smtputf8=settings.mail_smtputf8,
                hasher=hasher,
                mail_limit=mail_limit,
                enumeration_safe=settings.registration_enumeration_safe,
                replace_unverified_after=settings.unverified_replaceable_after,
            ),
            verification_resend=VerificationResend(
                sender_address=settings.mail_from, mail_limit=mail_limit
            ),
            email_verification=EmailVerification(tokens=tokens),
            sign_in=SignIn(
                hasher=hasher,
                account_limit=account_signin_limit,
                require_verified=settings.signin_requires_verified_email,
                browser_lifetime=timedelta(seconds=settings.session_max_age_seconds),
                bearer_lifetime=timedelta(seconds=settings.api_token_max_age_seconds),
                idle=timedelta(seconds=settings.session_idle_seconds),
            ),
            password_reset=PasswordReset(
                sender_address=settings.mail_from,
                mail_limit=mail_limit,
                address_limit=password_reset_address_limit,
                hasher=hasher,
                account_limit=account_signin_limit,
                link_lifetime=reset_links.lifetime,
            ),
            address_change=AddressChange(
                sender_address=settings.mail_from,
                smtputf8=settings.mail_smtputf8,
                hasher=hasher,
                mail_limit=mail_limit,
                account_limit=account_signin_limit,
                link_lifetime=confirm_links.lifetime,
                revert_lifetime=revert_links.lifetime,
            ),
            mail_status=MailStatus(),
        )

    async def close(self) -> None:
        await self.runner.stop()
        await self.sender.close()
        self.hasher.close()
        await self.rate_counter.close()
        await self.engine.dispose()
        await self.health_engine.dispose()
        await self.recorder_engine.dispose()
