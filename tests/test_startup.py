"""Failing closed: a real `uvicorn backend.main:app` refuses to start without a real
SECRET_KEY outside an explicit ENVIRONMENT=development, with one line saying what to set;
/docs and /openapi.json follow API_DOCS_ENABLED (/redoc is never served: see
tests/test_api_docs.py); the operator CLI and Alembic need only DATABASE_URL."""

import os
import secrets
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from pydantic import SecretStr

from backend.devstack.app_process import AppProcess
from backend.settings import (
    DEFAULT_SECRET_KEY,
    OPS_PASSWORD_REFUSED,
    SECRET_KEY_REFUSED,
    Settings,
)
from tests.support.app_client import app_client

DOC_PATHS = ("/docs", "/openapi.json")


def _clean_env(**values: str) -> dict[str, str]:
    """The suite's environment without any of the settings that decide the refusal."""
    decisive = ("ENVIRONMENT", "SECRET_KEY", "OPS_PASSWORD")
    env = {k: v for k, v in os.environ.items() if k not in decisive}
    return {**env, **values}


@pytest.mark.parametrize(
    "settings_env",
    [
        pytest.param({}, id="environment-unset-no-key"),
        pytest.param({"SECRET_KEY": DEFAULT_SECRET_KEY}, id="environment-unset-default-key"),
        pytest.param({"ENVIRONMENT": "production"}, id="production-no-key"),
        pytest.param(
            {"ENVIRONMENT": "production", "SECRET_KEY": DEFAULT_SECRET_KEY},
            id="production-default-key",
        ),
        pytest.param(
            {"ENVIRONMENT": "production", "SECRET_KEY": secrets.token_hex(15)},
            id="production-short-key",
        ),
        pytest.param({"ENVIRONMENT": "test", "SECRET_KEY": "x" * 31}, id="test-short-key"),
    ],
)
def test_uvicorn_refuses_to_start_with_one_line(
    settings_env: dict[str, str], database_url: str, tmp_path: Path
) -> None:
    # cwd: an empty folder, so no developer's .env can make it development.
    process = subprocess.run(
        [sys.executable, "-m", "uvicorn", "backend.main:app", "--port", "0"],
        cwd=tmp_path,
        env=_clean_env(DATABASE_URL=database_url, **settings_env),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert process.returncode != 0
    assert process.stderr.splitlines() == [f"refusing to start: {SECRET_KEY_REFUSED}"]
    assert "Traceback" not in process.stdout + process.stderr


def test_uvicorn_refuses_a_short_ops_password(database_url: str, tmp_path: Path) -> None:
    env = _clean_env(
        DATABASE_URL=database_url,
        ENVIRONMENT="production",
        SECRET_KEY=secrets.token_urlsafe(32),
        OPS_PASSWORD="ops-password",
    )
    process = subprocess.run(
        [sys.executable, "-m", "uvicorn", "backend.main:app", "--port", "0"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert process.returncode != 0
    assert process.stderr.splitlines() == [f"refusing to start: {OPS_PASSWORD_REFUSED}"]


async def test_uvicorn_starts_in_production_with_a_real_key(settings: Settings) -> None:
    production = settings.model_copy(
        update={"environment": "production", "secret_key": SecretStr(secrets.token_urlsafe(32))}
    )
    with AppProcess(production) as app:
        async with httpx.AsyncClient(base_url=app.url, timeout=30) as client:
            assert (await client.get("/healthz")).status_code == 200
            for path in DOC_PATHS:
                assert (await client.get(path)).status_code == 404, path


def test_an_explicit_development_runs_with_the_default_key(settings: Settings) -> None:
    development = settings.model_copy(
        update={"environment": "development", "secret_key": SecretStr(DEFAULT_SECRET_KEY)}
    )
    with AppProcess(development) as app:
        assert httpx.get(f"{app.url}/docs").status_code == 200


@pytest.mark.parametrize(
    ("environment", "enabled", "served"),
    [
        ("development", None, True),
        ("production", None, False),
        ("test", None, False),
        ("production", True, True),
        ("development", False, False),
    ],
)
async def test_docs_follow_api_docs_enabled(
    settings: Settings, environment: str, enabled: bool | None, served: bool
) -> None:
    configured = settings.model_copy(
        update={"environment": environment, "api_docs_enabled": enabled}
    )
    async with app_client(configured) as client:
        for path in DOC_PATHS:
            response = await client.get(path)
            assert response.status_code == (200 if served else 404), path
        assert (await client.get("/redoc")).status_code == 404


def test_the_operator_cli_needs_only_the_database(database_url: str, tmp_path: Path) -> None:
    process = subprocess.run(
        [sys.executable, "-m", "backend", "jobs"],
        cwd=tmp_path,
        env=_clean_env(DATABASE_URL=database_url),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert process.returncode == 0, process.stderr
    assert "pending: " in process.stdout
