"""The settings the suite runs the app with."""

from typing import Any

from backend.settings import Settings
from tests.support.mailhog import MailEndpoints

# The suite runs as a deployment does (ENVIRONMENT=test is not development): with a real
# key of at least 32 characters, under the same refusal rules as production.
TEST_SECRET = "test-secret-key-not-for-production"
# Outside development /metrics is served only with a token (tests/test_metrics.py sends it).
METRICS_TOKEN = "test-metrics-token"


def make_settings(database_url: str, mail: MailEndpoints, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "environment": "test",
        "database_url": database_url,
        "mail_server": mail.smtp_host,
        "mail_port": mail.smtp_port,
        "mail_timeout_seconds": 5,
        "app_base_url": "http://testserver",
        # The in-process client says testserver; uvicorn processes are called by address.
        "allowed_hosts": "127.0.0.1,localhost,::1",
        "metrics_token": METRICS_TOKEN,
        "secret_key": TEST_SECRET,
        "register_rate_limit": "",  # tests register many users from one client
        "resend_rate_limit": "",  # and ask for many resends
        "password_reset_rate_limit": "",  # and ask for many resets
        "signin_rate_limit": "",  # and sign in many times (tests/test_signin_limits.py: on)
        "job_poll_seconds": 0.2,
        "job_retry_base_seconds": 0.2,
        "job_retry_cap_seconds": 1.0,
        "mail_relay_probe_seconds": 0.5,
    }
    values.update(overrides)
    return Settings(_env_file=None, **values)
