"""Settings: safe defaults for development, refusals outside it."""

import pytest
from pydantic import ValidationError

from backend.settings import DEFAULT_SECRET_KEY, Settings


def test_development_needs_no_configuration() -> None:
    settings = Settings(_env_file=None)
    assert settings.environment == "development"
    assert settings.secret_key.get_secret_value() == DEFAULT_SECRET_KEY
    assert DEFAULT_SECRET_KEY not in repr(settings)


@pytest.mark.parametrize("environment", ["production", "test"])
@pytest.mark.parametrize("secret", ["", DEFAULT_SECRET_KEY])
def test_missing_or_default_secret_is_refused_outside_development(
    environment: str, secret: str
) -> None:
    with pytest.raises(ValidationError, match="SECRET_KEY"):
        Settings(_env_file=None, environment=environment, secret_key=secret)


def test_names_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgresql+asyncpg://u@/db?host=/run/pg")
    monkeypatch.setenv("MAIL_SERVER", "smtp.internal")
    monkeypatch.setenv("MAIL_PORT", "2525")
    monkeypatch.setenv("MAIL_FROM", "hello@corp.example")
    monkeypatch.setenv("APP_BASE_URL", "https://app.example")
    monkeypatch.setenv("SECRET_KEY", "s3cret-from-env")
    monkeypatch.setenv("ENVIRONMENT", "production")
    settings = Settings(_env_file=None)
    assert settings.database_url == "postgresql+asyncpg://u@/db?host=/run/pg"
    assert (settings.mail_server, settings.mail_port) == ("smtp.internal", 2525)
    assert settings.mail_from == "hello@corp.example"
    assert settings.cookies_secure is True


def test_cookies_are_not_secure_on_plain_http() -> None:
    settings = Settings(_env_file=None, app_base_url="http://localhost:8000")
    assert settings.cookies_secure is False


def test_a_malformed_rate_limit_is_refused_at_start() -> None:
    with pytest.raises(ValidationError, match="register_rate_limit"):
        Settings(_env_file=None, register_rate_limit="ten per minute")
