"""Application settings, read from the environment and from `.env`.

The app fails closed: `ENVIRONMENT` defaults to `production`, where the development
`SECRET_KEY` (or a short one) stops the start with one line saying what to set. Only an
explicit `ENVIRONMENT=development` (`make dev`, docker compose) runs with the defaults.
"""

from datetime import timedelta
from functools import lru_cache
from ipaddress import IPv4Network, IPv6Network, ip_network
from typing import Literal
from urllib.parse import urlsplit

import limits
from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_SECRET_KEY = "dev-only-secret-change-me"
SECRET_KEY_MIN_LENGTH = 32
SECRET_KEY_REFUSED = (
    "SECRET_KEY is missing, the development default or shorter than "
    f"{SECRET_KEY_MIN_LENGTH} characters; set SECRET_KEY to a random string of at least "
    f"{SECRET_KEY_MIN_LENGTH} characters "
    "(python -c 'import secrets; print(secrets.token_urlsafe(32))'), "
    "or ENVIRONMENT=development for local work"
)
OPS_PASSWORD_MIN_LENGTH = 16
OPS_PASSWORD_REFUSED = (
    f"OPS_PASSWORD is shorter than {OPS_PASSWORD_MIN_LENGTH} characters; set it to a random "
    f"string of at least {OPS_PASSWORD_MIN_LENGTH} characters "
    "(python -c 'import secrets; print(secrets.token_urlsafe(24))'), "
    "or leave it empty to keep the operator page off"
)


class DatabaseSettings(BaseSettings):
    """What Alembic and the operator CLI read: only the database, so neither needs the
    app's secrets (a migration job in a deploy pipeline has no business holding them)."""

    model_config = SettingsConfigDict(env_file=".env", extra="ignore")

    database_url: str = "postgresql+asyncpg://postgres@127.0.0.1:5432/app"


class Settings(DatabaseSettings):
    # Not development unless said so: a deployment that forgets ENVIRONMENT must not run
    # with the repository's SECRET_KEY, with which anyone can forge a verification link.
    environment: Literal["development", "test", "production"] = "production"
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    # json: one object per line, for a log pipeline; text: lines for people. Unset: text
    # in development, json elsewhere (see `log_lines`).
    log_format: Literal["json", "text"] | None = None
    # /docs and /openapi.json; unset: on in development only.
    api_docs_enabled: bool | None = None
    # GET /metrics (Prometheus); keep it off the public internet at the proxy, or off here.
    metrics_enabled: bool = True
    # The bearer token /metrics asks for. Unset: /metrics is served in development only,
    # since its figures tell a stranger which addresses were just registered.
    metrics_token: SecretStr = SecretStr("")
    # Host names the app answers besides APP_BASE_URL's (comma-separated; `*.example.com`
    # for subdomains, `*` for any); every other Host gets 400. See `allowed_host_names`.
    allowed_hosts: str = ""

    # Past this wait for a pooled connection, a request gets 503 with Retry-After.
    database_pool_timeout_seconds: float = Field(default=5.0, gt=0)

    mail_server: str = "127.0.0.1"
    mail_port: int = 1025
    mail_from: str = "welcome@example.com"
    mail_from_name: str | None = "Welcome Desk"
    # MailHog needs none of these; a real SMTP relay usually needs all of them.
    mail_username: str = ""
    mail_password: SecretStr = SecretStr("")
    mail_starttls: bool = False
    mail_ssl_tls: bool = False
    # Emails sent over one SMTP connection when a backlog drains.
    mail_batch_size: int = Field(default=50, ge=1)
    # Bounded so a hung SMTP server turns into a retry instead of a stuck job.
    mail_timeout_seconds: int = 15
    # Most messages all processes together hand the relay ("14/second"); empty = no cap.
    mail_send_rate: str = ""
    # While the relay is down or refuses us, one probe checks it this often.
    mail_relay_probe_seconds: float = Field(default=2.0, gt=0)
    # How long a connection stays open for the next batch once a backlog is drained.
    mail_connection_idle_seconds: float = Field(default=5.0, ge=0)
    # Whether the relay takes SMTPUTF8 (RFC 6531): without it, an address with a
    # non-ASCII local part can never be delivered, so registration refuses it.
    mail_smtputf8: bool = False

    app_base_url: str = "http://localhost:8000"
    # SecretStr: kept out of reprs, logs and tracebacks.
    secret_key: SecretStr = SecretStr(DEFAULT_SECRET_KEY)
    # The operator page (/ops/jobs), HTTP basic auth as user `ops`; empty: no such page.
    ops_password: SecretStr = SecretStr("")
    verification_max_age_seconds: int = Field(default=48 * 3600, ge=1)
    # An unverified account stops holding its username and email this long after its
    # latest link expired: a new registration of either then replaces it. 7 days is more
    # than JOB_MAX_AGE_HOURS (5 days), so a link a relay outage delivered late has
    # expired too before its account can be replaced.
    unverified_account_grace_hours: float = Field(default=168.0, ge=0)
    # A taken email gets the answer of a new registration, and its owner an email about
    # the attempt (docs/security.md, "Enumeration-safe registration").
    registration_enumeration_safe: bool = False
    # Per client, in the `limits` notation ("10/minute", "100/hour"); empty turns it off.
    register_rate_limit: str = "10/minute"
    # Per client, verification resends (form and API together), whatever the address.
    resend_rate_limit: str = "5/minute"
    # Emails one address may be sent, whichever path sends them; empty turns it off.
    mail_per_address_limit: str = "3/hour"
    # Where the limits are counted: empty = the app's Postgres; or a `limits` storage URL
    # with a moving window, e.g. redis://host:6379 (needs its client: the `redis` extra).
    rate_limit_storage_url: str = ""
    # Reverse proxies (IPs or CIDRs, comma-separated) whose X-Forwarded-For is believed.
    trusted_proxies: str = ""
    # Sign-in (docs/signin.md). The right password on an unconfirmed address gets 403.
    signin_requires_verified_email: bool = True
    # Sign-in attempts, per client and per login (a username or an address as typed).
    signin_rate_limit: str = "10/minute"
    # A browser session ends this long after sign-in whatever happens, or once unused for
    # the idle time; a bearer token from POST /api/token lasts API_TOKEN_MAX_AGE_SECONDS.
    session_max_age_seconds: int = Field(default=14 * 86400, ge=1)
    session_idle_seconds: int = Field(default=2 * 86400, ge=1)
    api_token_max_age_seconds: int = Field(default=3600, ge=1)
    # Password reset (docs/signin.md): how long a reset link works, and the requests per
    # client (429) and per address (past it, the email is dropped: the answer is the same).
    password_reset_token_ttl: int = Field(default=3600, ge=1)
    password_reset_rate_limit: str = "5/hour"
    # Changing the address (docs/address-change.md): how long the link to the new address
    # works, and how long the old address can undo the change.
    email_change_link_hours: int = Field(default=24, ge=1)
    email_change_revert_days: int = Field(default=7, ge=1)
    # Argon2 hashes run at once (0: one per core), and how many more may wait their turn;
    # past that a registration gets 503 with Retry-After at once.
    password_hash_workers: int = Field(default=0, ge=0)
    register_queue_limit: int = Field(default=8, ge=0)

    # Durable background work (see docs/guarantees.md).
    job_lease_seconds: float = 60.0
    job_poll_seconds: float = 2.0
    job_batch_size: int = Field(default=50, ge=1)
    # Batches run at once per process (each its own SMTP connection) when work piles up.
    # 8: each delivery waits for its record, and 8 lanes share each commit (measured: a
    # drain at 0.8 of a raw single-connection sender, against ~0.65 with 4); Postfix
    # allows 20 concurrent deliveries per destination by default.
    job_concurrency: int = Field(default=8, ge=1)
    # A job is given up when its own failures last longer than this (Postfix keeps mail
    # 5 days: maximal_queue_lifetime). Time the relay was unavailable counts too.
    job_max_age_hours: float = Field(default=120.0, gt=0)
    job_retry_base_seconds: float = 2.0
    job_retry_cap_seconds: float = 600.0
    job_shutdown_grace_seconds: float = 10.0
    # Finished jobs are deleted after this (the audit log is the record): succeeded ones
    # after JOB_RETENTION_DAYS, failed and cancelled ones (which people may want to read or
    # retry) after JOB_FAILED_RETENTION_DAYS. See docs/operating.md#retention.
    job_retention_days: float = Field(default=14.0, gt=0)
    job_failed_retention_days: float = Field(default=30.0, gt=0)
    # Seconds between retention rounds (the first comes 10 to 60 s after start-up).
    job_purge_every_seconds: float = Field(default=3600.0, gt=0)
    # After this many days an audit row keeps its action, ids and time, and loses the
    # addresses and other personal data in its details; 0 keeps them forever.
    audit_personal_data_days: int = Field(default=365, ge=0)
    job_worker_enabled: bool = True
    # LISTEN for work committed by any process and start it at once, the poll only the
    # fallback. Off where LISTEN cannot work: behind PgBouncer in transaction mode.
    job_notify: bool = True

    @property
    def cookies_secure(self) -> bool:
        return urlsplit(self.app_base_url).scheme == "https"

    @property
    def log_lines(self) -> Literal["json", "text"]:
        if self.log_format is not None:
            return self.log_format
        return "text" if self.environment == "development" else "json"

    @property
    def allowed_host_names(self) -> frozenset[str]:
        """APP_BASE_URL's host (its emails link there), ALLOWED_HOSTS, and in development
        the loopback names (`make dev` is opened as localhost or 127.0.0.1)."""
        names = {urlsplit(self.app_base_url).hostname or ""}
        names.update(item.strip().lower() for item in self.allowed_hosts.split(","))
        if self.environment == "development":
            names.update({"localhost", "127.0.0.1", "::1"})
        return frozenset(name.strip("[]") for name in names if name)

    @property
    def ops_enabled(self) -> bool:
        return bool(self.ops_password.get_secret_value())

    @property
    def unverified_replaceable_after(self) -> timedelta:
        """How long after its latest link was queued an unverified account can be replaced."""
        return timedelta(
            seconds=self.verification_max_age_seconds,
            hours=self.unverified_account_grace_hours,
        )

    @property
    def trusted_proxy_networks(self) -> tuple[IPv4Network | IPv6Network, ...]:
        return _networks(self.trusted_proxies)

    @field_validator(
        "register_rate_limit",
        "resend_rate_limit",
        "mail_send_rate",
        "mail_per_address_limit",
        "signin_rate_limit",
        "password_reset_rate_limit",
    )
    @classmethod
    def _parse_rate_limit(cls, value: str) -> str:
        # limits.parse raises ValueError on a malformed limit.
        if value.strip() and limits.parse(value).amount < 1:
            raise ValueError("a limit of 0 refuses everything; leave it empty to turn it off")
        return value.strip()

    @property
    def api_docs(self) -> bool:
        if self.api_docs_enabled is None:
            return self.environment == "development"
        return self.api_docs_enabled

    @field_validator("trusted_proxies")
    @classmethod
    def _parse_networks(cls, value: str) -> str:
        # Strict: "10.0.0.1/8" is refused rather than silently widened to 10.0.0.0/8.
        return ",".join(str(network) for network in _networks(value))

    @field_validator("ops_password")
    @classmethod
    def _ascii_ops_password(cls, value: SecretStr) -> SecretStr:
        # Basic auth credentials are decoded as ASCII (FastAPI's HTTPBasic), and browsers
        # disagree on how they encode anything else: such a password could never match.
        if not value.get_secret_value().isascii():
            raise ValueError("use ASCII characters only (python's secrets.token_urlsafe does)")
        return value

    @model_validator(mode="after")
    def _refuse_weak_ops_password(self) -> "Settings":
        password = self.ops_password.get_secret_value()
        if self.environment != "development" and 0 < len(password) < OPS_PASSWORD_MIN_LENGTH:
            raise ValueError(OPS_PASSWORD_REFUSED)
        return self

    @model_validator(mode="after")
    def _refuse_unsafe_secret(self) -> "Settings":
        secret = self.secret_key.get_secret_value()
        if self.environment == "development":
            return self
        if secret == DEFAULT_SECRET_KEY or len(secret) < SECRET_KEY_MIN_LENGTH:
            raise ValueError(SECRET_KEY_REFUSED)
        return self


@lru_cache
def _networks(value: str) -> tuple[IPv4Network | IPv6Network, ...]:
    return tuple(ip_network(item.strip()) for item in value.split(",") if item.strip())


@lru_cache
def get_settings() -> Settings:
    return Settings()


def settings_or_exit() -> Settings:
    """The settings, or the process ends with one line on stderr saying what to set.

    A pydantic traceback buries the one thing an operator must do; this is called where
    a process starts (`backend.main:app`), before anything else runs."""
    try:
        return get_settings()
    except ValidationError as exc:
        raise SystemExit(f"refusing to start: {describe(exc)}") from None


def describe(exc: ValidationError) -> str:
    """One line per ValidationError, naming the variables; never the values (secrets)."""
    problems = []
    for error in exc.errors(include_url=False, include_input=False):
        message = error["msg"].removeprefix("Value error, ")
        names = ".".join(str(part) for part in error["loc"]).upper()
        problems.append(f"{names}: {message}" if names else message)
    return " ".join("; ".join(problems).split())
