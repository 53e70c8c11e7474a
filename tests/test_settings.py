"""Settings: development only when asked for, refusals outside it."""

import pytest
from pydantic import ValidationError

from backend.settings import (
    DEFAULT_SECRET_KEY,
    OPS_PASSWORD_REFUSED,
    SECRET_KEY_REFUSED,
    Settings,
    describe,
)

GOOD_SECRET = "k" * 32


def test_development_needs_no_configuration() -> None:
    settings = Settings(_env_file=None, environment="development")
    assert settings.secret_key.get_secret_value() == DEFAULT_SECRET_KEY
    assert DEFAULT_SECRET_KEY not in repr(settings)
    assert settings.api_docs is True


def test_environment_unset_is_production(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ENVIRONMENT", raising=False)
    monkeypatch.delenv("SECRET_KEY", raising=False)
    with pytest.raises(ValidationError) as refused:
        Settings(_env_file=None)
    assert describe(refused.value) == SECRET_KEY_REFUSED

    settings = Settings(_env_file=None, secret_key=GOOD_SECRET)
    assert settings.environment == "production"
    assert settings.api_docs is False


@pytest.mark.parametrize("environment", ["production", "test"])
@pytest.mark.parametrize("secret", ["", DEFAULT_SECRET_KEY, GOOD_SECRET[:-1]])
def test_missing_default_or_short_secret_is_refused_outside_development(
    environment: str, secret: str
) -> None:
    with pytest.raises(ValidationError) as refused:
        Settings(_env_file=None, environment=environment, secret_key=secret)
    assert describe(refused.value) == SECRET_KEY_REFUSED


@pytest.mark.parametrize("environment", ["production", "test"])
def test_a_long_secret_is_accepted(environment: str) -> None:
    settings = Settings(_env_file=None, environment=environment, secret_key=GOOD_SECRET)
    assert settings.secret_key.get_secret_value() == GOOD_SECRET


def test_the_refusal_is_one_line_that_says_what_to_set_and_never_echoes_values() -> None:
    with pytest.raises(ValidationError) as refused:
        Settings(_env_file=None, environment="production", secret_key="a-short-secret-value")
    message = describe(refused.value)
    assert "\n" not in message
    assert "set SECRET_KEY to a random string of at least 32 characters" in message
    assert "ENVIRONMENT=development" in message
    assert "a-short-secret-value" not in message


def test_other_invalid_settings_are_named_on_the_same_line() -> None:
    with pytest.raises(ValidationError) as refused:
        Settings(_env_file=None, environment="staging", mail_port="smtp")
    message = describe(refused.value)
    assert "\n" not in message
    assert message.startswith("ENVIRONMENT: Input should be 'development', 'test' or 'production'")
    assert "MAIL_PORT: " in message
    assert "staging" not in message


@pytest.mark.parametrize(
    ("environment", "enabled", "expected"),
    [
        ("development", None, True),
        ("production", None, False),
        ("test", None, False),
        ("development", False, False),
        ("production", True, True),
    ],
)
def test_api_docs_follow_the_setting_and_default_to_development_only(
    environment: str, enabled: bool | None, expected: bool
) -> None:
    settings = Settings(
        _env_file=None, environment=environment, secret_key=GOOD_SECRET, api_docs_enabled=enabled
    )
    assert settings.api_docs is expected


def test_names_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgresql+asyncpg://u@/db?host=/run/pg")
    monkeypatch.setenv("MAIL_SERVER", "smtp.internal")
    monkeypatch.setenv("MAIL_PORT", "2525")
    monkeypatch.setenv("MAIL_FROM", "hello@corp.example")
    monkeypatch.setenv("APP_BASE_URL", "https://app.example")
    monkeypatch.setenv("SECRET_KEY", "s3cret-from-env-" + "x" * 16)
    monkeypatch.setenv("ENVIRONMENT", "production")
    monkeypatch.setenv("API_DOCS_ENABLED", "true")
    settings = Settings(_env_file=None)
    assert settings.database_url == "postgresql+asyncpg://u@/db?host=/run/pg"
    assert (settings.mail_server, settings.mail_port) == ("smtp.internal", 2525)
    assert settings.mail_from == "hello@corp.example"
    assert settings.cookies_secure is True
    assert settings.api_docs is True


def test_cookies_are_not_secure_on_plain_http() -> None:
    settings = Settings(
        _env_file=None, environment="development", app_base_url="http://localhost:8000"
    )
    assert settings.cookies_secure is False


def test_a_malformed_rate_limit_is_refused_at_start() -> None:
    with pytest.raises(ValidationError, match="register_rate_limit"):
        Settings(_env_file=None, environment="development", register_rate_limit="ten per minute")


def test_the_operator_page_is_off_unless_ops_password_is_set() -> None:
    assert Settings(_env_file=None, environment="development").ops_enabled is False
    settings = Settings(_env_file=None, environment="test", secret_key=GOOD_SECRET,
                        ops_password="p" * 16)  # fmt: skip
    assert settings.ops_enabled is True
    assert "p" * 16 not in repr(settings)


@pytest.mark.parametrize("environment", ["production", "test"])
def test_a_short_ops_password_is_refused_outside_development(environment: str) -> None:
    with pytest.raises(ValidationError) as refused:
        Settings(
            _env_file=None, environment=environment, secret_key=GOOD_SECRET, ops_password="p" * 15
        )
    assert describe(refused.value) == OPS_PASSWORD_REFUSED
    assert "p" * 15 not in describe(refused.value)
    # In development anything goes (make dev makes a long one anyway).
    assert Settings(_env_file=None, environment="development", ops_password="ops").ops_enabled


def test_a_non_ascii_ops_password_is_refused_everywhere() -> None:
    # Basic auth credentials are read as ASCII: such a password could never be typed in.
    with pytest.raises(ValidationError) as refused:
        Settings(_env_file=None, environment="development", ops_password="pässwörd-pässwörd")
    assert describe(refused.value).startswith("OPS_PASSWORD: use ASCII characters only")
