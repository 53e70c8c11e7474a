"""Application settings, read from the environment and from `.env`.

Every setting has a development default so `make dev` needs no `.env`; outside
development the defaults that would be unsafe are refused at start-up.
"""

from functools import lru_cache
from typing import Literal
from urllib.parse import urlsplit

import limits
from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_SECRET_KEY = "dev-only-secret-change-me"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", extra="ignore")

    environment: Literal["development", "test", "production"] = "development"
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"

    database_url: str = "postgresql+asyncpg://postgres@127.0.0.1:5432/app"
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
    # Most messages this process hands to the relay ("14/second"); empty = no cap.
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
    verification_max_age_seconds: int = 48 * 3600
    # Per client address, in the `limits` notation ("10/minute", "100/hour"); empty turns it off.
    register_rate_limit: str = "10/minute"
    # Argon2 hashes run at once (0: one per core), and how many more may wait their turn;
    # past that a registration gets 503 with Retry-After at once.
    password_hash_workers: int = Field(default=0, ge=0)
    register_queue_limit: int = Field(default=16, ge=0)

    # Durable background work (see README, "How background work survives failures").
    job_lease_seconds: float = 60.0
    job_poll_seconds: float = 2.0
    job_batch_size: int = Field(default=50, ge=1)
    # Batches run at once per process (each its own SMTP connection) when work piles up.
    job_concurrency: int = Field(default=4, ge=1)
    # A job is given up when its own failures last longer than this (Postfix keeps mail
    # 5 days: maximal_queue_lifetime). Time the relay was unavailable counts too.
    job_max_age_hours: float = Field(default=120.0, gt=0)
    job_retry_base_seconds: float = 2.0
    job_retry_cap_seconds: float = 600.0
    job_shutdown_grace_seconds: float = 10.0
    # Succeeded jobs are deleted after this; failed ones are kept (the audit log is the record).
    job_retention_days: float = 14.0
    job_worker_enabled: bool = True

    @property
    def cookies_secure(self) -> bool:
        return urlsplit(self.app_base_url).scheme == "https"

    @field_validator("register_rate_limit", "mail_send_rate")
    @classmethod
    def _parse_rate_limit(cls, value: str) -> str:
        if value.strip():
            limits.parse(value)  # raises ValueError on a malformed limit
        return value.strip()

    @model_validator(mode="after")
    def _refuse_unsafe_secret(self) -> "Settings":
        secret = self.secret_key.get_secret_value()
        if self.environment != "development" and secret in ("", DEFAULT_SECRET_KEY):
            raise ValueError(
                "SECRET_KEY must be set to a non-default value outside development "
                f"(ENVIRONMENT={self.environment})"
            )
        return self


@lru_cache
def get_settings() -> Settings:
    return Settings()
