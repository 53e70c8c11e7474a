"""The Docker setup, checked offline: no Docker engine is needed (or used) here.

What can be checked without running containers: docker-compose.yml wires the services
together the way the app reads its settings and migrates before the app starts, the
Dockerfile builds in two stages and ships every path the app needs and nothing else (no
tests, no dev stack, no dev dependencies), and .dockerignore keeps local state out of the
build context. tests/test_lock.py runs what the image runs, without Docker.
"""

import ast
import json
import re
import shlex
import shutil
import subprocess
from pathlib import PurePosixPath
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from backend.devstack.app_process import SERVING_ARGS
from backend.settings import DEFAULT_SECRET_KEY, DatabaseSettings, Settings
from tests.support.image import (
    DOCKERFILE,
    ROOT,
    build_context,
    dockerfile_stages,
    dockerignored,
    exec_form,
    final_stage,
    image_files,
)

COMPOSE_FILE = ROOT / "docker-compose.yml"

# Top-level paths the app needs at runtime: the package, the migrations beside alembic.ini,
# and the templates beside the package (backend/context.py: TEMPLATES_DIR).
RUNTIME_PATHS = ("backend", "migrations", "templates", "alembic.ini")
# Where the builder stage makes the virtualenv the final stage copies.
VENV = "/opt/venv"

MAILHOG_SMTP_PORT = 1025
MAILHOG_HTTP_PORT = 8025

_INTERPOLATION = re.compile(r"\$\{(?P<name>\w+)(?::?-(?P<default>[^}]*))?\}")


# --- helpers ---------------------------------------------------------------------------


def interpolate(value: str) -> str:
    """Resolve compose's `${VAR}` / `${VAR:-default}` to the default, as on a bare machine."""
    resolved = _INTERPOLATION.sub(lambda m: m.group("default") or "", value)
    assert "$" not in resolved.replace("$$", ""), f"unresolved interpolation in {value!r}"
    return resolved.replace("$$", "$")


def as_mapping(value: Any) -> dict[str, Any]:
    assert isinstance(value, dict), f"expected a mapping, got {value!r}"
    return {str(k): v for k, v in value.items()}


def environment(service: dict[str, Any]) -> dict[str, str]:
    """A service's environment, from either the mapping or the `- NAME=value` list form."""
    raw = service.get("environment", {})
    if isinstance(raw, list):
        pairs = [str(item).split("=", 1) for item in raw]
        raw = {pair[0]: pair[1] if len(pair) == 2 else "" for pair in pairs}
    return {name: interpolate(str(value)) for name, value in as_mapping(raw).items()}


def published_ports(service: dict[str, Any]) -> dict[int, int]:
    """Container port -> host port, from short (`"8000:8000"`) or long syntax."""
    return {target: port for target, (_, port) in published_addresses(service).items()}


def published_addresses(service: dict[str, Any]) -> dict[int, tuple[str, int]]:
    """Container port -> (host address, host port); the address is "" for every interface."""
    ports: dict[int, tuple[str, int]] = {}
    for entry in service.get("ports", []):
        if isinstance(entry, dict):
            address = str(entry.get("host_ip", ""))
            ports[int(entry["target"])] = (address, int(entry["published"]))
            continue
        spec = str(entry).split("/", 1)[0]
        parts = spec.split(":")
        assert len(parts) >= 2, f"port {entry!r} is not published on the host"
        address = parts[-3] if len(parts) >= 3 else ""
        ports[int(parts[-1])] = (address, int(parts[-2]))
    return ports


def healthcheck_command(service: dict[str, Any]) -> list[str]:
    test = service["healthcheck"]["test"]
    if isinstance(test, str):
        return ["CMD-SHELL", test]
    return [str(part) for part in test]


def command_words(service: dict[str, Any]) -> list[str]:
    command = service["command"]
    return shlex.split(command) if isinstance(command, str) else [str(word) for word in command]


# --- fixtures (local to this module; none from conftest.py) ----------------------------


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return as_mapping(yaml.safe_load(COMPOSE_FILE.read_text()))


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {name: as_mapping(spec) for name, spec in as_mapping(compose["services"]).items()}


@pytest.fixture(scope="module")
def app_env(services: dict[str, dict[str, Any]]) -> dict[str, str]:
    return environment(services["app"])


# --- docker-compose.yml ----------------------------------------------------------------


def test_compose_has_its_four_services_and_no_obsolete_version(compose: dict[str, Any]) -> None:
    assert set(as_mapping(compose["services"])) == {"db", "mailhog", "migrate", "app"}
    assert "version" not in compose


def test_db_is_postgres_17_with_a_readiness_check_and_a_named_volume(
    compose: dict[str, Any], services: dict[str, dict[str, Any]]
) -> None:
    db = services["db"]
    assert db["image"] == "postgres:17"
    assert environment(db) == {
        "POSTGRES_USER": "app",
        "POSTGRES_PASSWORD": "app",
        "POSTGRES_DB": "app",
    }

    check = healthcheck_command(db)
    words = shlex.split(check[1]) if check[0] == "CMD-SHELL" else check[1:]
    assert words[0] == "pg_isready"
    assert words[words.index("-U") + 1] == "app"
    assert words[words.index("-d") + 1] == "app"

    assert "pgdata:/var/lib/postgresql/data" in db["volumes"]
    assert "pgdata" in as_mapping(compose["volumes"])


def test_mailhog_publishes_smtp_and_the_web_api(services: dict[str, dict[str, Any]]) -> None:
    mailhog = services["mailhog"]
    assert mailhog["image"] == "mailhog/mailhog"
    # On the loopback only: the inbox's confirmation links are anyone's on the network else.
    assert published_addresses(mailhog) == {
        MAILHOG_SMTP_PORT: ("127.0.0.1", MAILHOG_SMTP_PORT),
        MAILHOG_HTTP_PORT: ("127.0.0.1", MAILHOG_HTTP_PORT),
    }


def test_app_is_built_here_published_on_8000_and_waits_for_the_migrations(
    services: dict[str, dict[str, Any]],
) -> None:
    app = services["app"]
    build = app["build"]
    assert (build if isinstance(build, str) else as_mapping(build)["context"]) == "."
    assert published_ports(app) == {8000: 8000}
    depends_on = as_mapping(app["depends_on"])
    # Started only once `alembic upgrade head` has exited 0: never on a stale schema.
    assert as_mapping(depends_on["migrate"])["condition"] == "service_completed_successfully"
    assert as_mapping(depends_on["db"])["condition"] == "service_healthy"
    assert as_mapping(depends_on["mailhog"])["condition"] == "service_started"
    assert app["restart"] == "unless-stopped"
    # The image's CMD serves; compose does not replace it with one that migrates too.
    assert "command" not in app and "entrypoint" not in app


def test_migrate_is_a_one_shot_alembic_upgrade_of_the_app_image(
    services: dict[str, dict[str, Any]],
) -> None:
    migrate, app = services["migrate"], services["app"]
    assert command_words(migrate) == ["alembic", "upgrade", "head"]
    # The same image as the app, built once under one name.
    assert migrate["build"] == app["build"]
    assert migrate["image"] == app["image"]
    assert as_mapping(as_mapping(migrate["depends_on"])["db"])["condition"] == "service_healthy"
    # "no", quoted: a bare `no` is YAML's false. A one-shot that restarted would never
    # complete, and `service_completed_successfully` would keep the app waiting.
    assert migrate["restart"] == "no"
    assert "ports" not in migrate and "healthcheck" not in migrate


def test_migrate_gets_the_database_and_nothing_else(
    services: dict[str, dict[str, Any]], app_env: dict[str, str]
) -> None:
    migrate_env = environment(services["migrate"])
    # Alembic reads DatabaseSettings: a migration job holds no SECRET_KEY.
    assert set(migrate_env) == {"DATABASE_URL"}
    assert {name.upper() for name in DatabaseSettings.model_fields} == {"DATABASE_URL"}
    assert migrate_env["DATABASE_URL"] == app_env["DATABASE_URL"]


@pytest.mark.skipif(shutil.which("docker") is None, reason="no docker client")
def test_docker_compose_config_accepts_the_file() -> None:
    """`docker compose config` validates the file against the Compose specification and
    needs no engine; it needs the compose plugin, which not every docker client has."""
    version = subprocess.run(["docker", "compose", "version"], capture_output=True, check=False)
    if version.returncode != 0:
        pytest.skip("the docker client has no compose plugin")
    result = subprocess.run(
        ["docker", "compose", "-f", str(COMPOSE_FILE), "config", "--format", "json"],
        capture_output=True,
        text=True,
        check=False,
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stderr
    config = json.loads(result.stdout)
    app = config["services"]["app"]
    assert app["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
    assert config["services"]["migrate"]["command"] == ["alembic", "upgrade", "head"]


def test_app_environment_names_are_all_settings(app_env: dict[str, str]) -> None:
    known = {name.upper() for name in Settings.model_fields}
    assert set(app_env) - known == set(), "the app would silently ignore these"
    assert {"DATABASE_URL", "MAIL_SERVER", "MAIL_PORT", "MAIL_FROM", "APP_BASE_URL"} <= set(app_env)


def test_database_url_points_at_the_db_service(
    app_env: dict[str, str], services: dict[str, dict[str, Any]]
) -> None:
    db_env = environment(services["db"])
    url = urlsplit(app_env["DATABASE_URL"])
    assert url.scheme == "postgresql+asyncpg"
    assert url.hostname == "db"
    assert url.port in (None, 5432)
    assert url.username == db_env["POSTGRES_USER"]
    assert url.password == db_env["POSTGRES_PASSWORD"]
    assert url.path == "/" + db_env["POSTGRES_DB"]


def test_mail_goes_to_the_mailhog_service(
    app_env: dict[str, str], services: dict[str, dict[str, Any]]
) -> None:
    assert app_env["MAIL_SERVER"] == "mailhog"
    assert app_env["MAIL_SERVER"] in services
    # Inside the compose network the app reaches MailHog's container port.
    assert int(app_env["MAIL_PORT"]) == MAILHOG_SMTP_PORT
    assert MAILHOG_SMTP_PORT in published_ports(services["mailhog"])


def test_app_environment_is_accepted_by_settings(app_env: dict[str, str]) -> None:
    # Field names are the lower-cased variable names; values stay strings, as from a process env.
    values: dict[str, Any] = {name.lower(): value for name, value in app_env.items()}
    settings = Settings(_env_file=None, **values)
    assert settings.environment == "development"
    assert settings.database_url == "postgresql+asyncpg://app:app@db:5432/app"
    assert settings.mail_server == "mailhog"
    assert settings.mail_port == MAILHOG_SMTP_PORT
    assert settings.mail_from == "welcome@example.com"
    assert settings.app_base_url == "http://localhost:8000"
    assert settings.cookies_secure is False
    # Without SECRET_KEY in the shell the compose default applies, which the settings
    # accept only because ENVIRONMENT is development.
    assert settings.secret_key.get_secret_value() == DEFAULT_SECRET_KEY


def test_interpolation_helper() -> None:
    assert interpolate("${SECRET_KEY:-dev-only}") == "dev-only"
    assert interpolate("${X-fallback}/${Y}") == "fallback/"
    assert interpolate("plain $$HOME") == "plain $HOME"


def test_app_healthcheck_matches_the_dockerfile(services: dict[str, dict[str, Any]]) -> None:
    (healthcheck,) = final_stage().args("HEALTHCHECK")
    dockerfile_command = exec_form(healthcheck.split(" CMD ", 1)[1])
    assert healthcheck_command(services["app"]) == ["CMD", *dockerfile_command]
    assert "http://127.0.0.1:8000/healthz" in dockerfile_command[-1]
    assert "urllib.request" in dockerfile_command[-1]


# --- Dockerfile ------------------------------------------------------------------------


def test_dockerfile_builds_in_two_stages_on_the_same_python() -> None:
    builder, final = dockerfile_stages()
    assert builder.name == "builder"
    # The venv's scripts name their interpreter by path: both stages must have the same.
    assert builder.base == final.base == "python:3.11-slim-trixie"
    assert final.name is None  # the image is the last stage


def test_builder_installs_the_runtime_lock_with_hashes() -> None:
    builder = dockerfile_stages()[0]
    # The lock file and nothing else from the context: the dependency layer is rebuilt
    # when the lock changes, not when the source does.
    copies = builder.context_copies()
    assert list(copies) == ["requirements.lock"]
    (install,) = (args for args in builder.args("RUN") if "pip install" in args)
    words = shlex.split(install)
    assert f"{VENV}/bin/pip" in words and f"python -m venv {VENV}" in install
    for flag in ("--require-hashes", "--no-deps", "--only-binary=:all:", "--no-cache-dir"):
        assert flag in words, f"the install lacks {flag}"
    assert words[words.index("-r") + 1] == copies["requirements.lock"]
    text = DOCKERFILE.read_text()
    assert "requirements-dev.lock" not in text and "[dev]" not in text
    assert "pyproject.toml" not in text  # the lock, not pyproject's ranges, says what to install
    assert "apt-get" not in text


def test_image_copies_the_venv_then_the_app_and_installs_nothing() -> None:
    final = final_stage()
    from_stages = [copy for copy in final.copies() if copy.stage is not None]
    assert [(c.stage, c.source, c.target) for c in from_stages] == [("builder", VENV, VENV)]
    assert not [args for args in final.args("RUN") if "pip" in args]
    # Dependencies are a layer of their own, before the source: a source edit reuses them.
    assert final.index("COPY", "--from=builder") < final.index("COPY", "backend")
    env = " ".join(final.args("ENV")).split()
    assert f"PATH={VENV}/bin:$PATH" in env
    assert "PYTHONDONTWRITEBYTECODE=1" in env and "PYTHONUNBUFFERED=1" in env
    assert final.args("EXPOSE") == ["8000"]


def test_dockerfile_copies_what_the_app_needs_at_runtime() -> None:
    final = final_stage()
    base = final.workdir()
    landed = final.context_copies()
    assert set(landed) == set(RUNTIME_PATHS)
    for path in RUNTIME_PATHS:
        assert landed[path] == f"{base}/{path}", f"{path} is not at {base}/{path}"
    # backend/context.py looks for templates/ beside the package; alembic.ini names
    # `%(here)s/migrations`: all of them must share one directory, the working directory.
    assert {str(PurePosixPath(target).parent) for target in landed.values()} == {base}
    assert f"PYTHONPATH={base}" in " ".join(final.args("ENV")).split()


def test_the_image_ships_the_app_and_no_tests_dev_stack_or_dev_files() -> None:
    shipped = image_files()
    assert {"backend/main.py", "alembic.ini", "migrations/env.py"} <= set(shipped)
    assert any(path.startswith("templates/") for path in shipped)
    assert any(path.startswith("backend/web/static/") for path in shipped)
    for path in shipped:
        assert not path.startswith(("tests/", "backend/devstack/", "bench/")), path
        assert "__pycache__" not in path and not path.endswith(".pyc"), path
    # Not in the image, and not even sent to the builder.
    context = set(build_context())
    for path in ("backend/devstack/inbox.py", "backend/devstack/inbox_ui.html"):
        assert (ROOT / path).exists() and path not in context
    assert not [path for path in context if path.startswith("backend/devstack/inbox_static/")]
    assert "requirements-dev.lock" not in context and "pyproject.toml" not in context


def test_nothing_the_image_ships_imports_the_dev_stack() -> None:
    importers = []
    for path in image_files():
        if not path.endswith(".py"):
            continue
        tree = ast.parse((ROOT / path).read_text(), filename=path)
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module, *(f"{node.module}.{a.name}" for a in node.names)]
            else:
                continue
            if any(name.startswith("backend.devstack") for name in names):
                importers.append(f"{path}:{node.lineno}")
    assert importers == [], "the image has no backend/devstack for these to import"


def test_dockerfile_runs_as_a_non_root_user() -> None:
    final = final_stage()
    users = [(i, args) for i, (name, args) in enumerate(final.instructions) if name == "USER"]
    assert users, "the container would run as root"
    last_index, user = users[-1]
    assert user.split(":")[0] not in ("root", "0")
    cmd_index = max(i for i, (name, _) in enumerate(final.instructions) if name == "CMD")
    assert last_index < cmd_index


def test_dockerfile_serves_and_leaves_the_migrations_to_their_own_step() -> None:
    final = final_stage()
    assert final.args("ENTRYPOINT") == []
    (cmd,) = final.args("CMD")
    # Exec form: uvicorn is PID 1, so `docker stop` reaches it with SIGTERM.
    words = exec_form(cmd)
    assert words[:2] == ["uvicorn", "backend.main:app"]
    assert "alembic" not in cmd and "sh" not in words
    assert words[words.index("--host") + 1] == "0.0.0.0"
    assert words[words.index("--port") + 1] == "8000"
    # The app reads X-Forwarded-For itself (TRUSTED_PROXIES) and needs the real peer.
    assert "--no-proxy-headers" in words and "--proxy-headers" not in words
    # Served as make dev, the tests and the bench serve it: the same limits and headers.
    assert words[words.index("8000") + 1 :] == list(SERVING_ARGS)


# --- .dockerignore ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "path",
    [
        ".venv",
        ".git",
        ".env",
        ".env.example",
        ".devdata",
        "tests",
        "tests/conftest.py",
        "bench",
        "node_modules",
        "requirements-dev.lock",
        "README.md",
        "backend/devstack",
        "backend/devstack/inbox_static/inbox.css",
        "backend/__pycache__",
        "backend/web/__pycache__/app.cpython-311.pyc",
        "a-new-file-nobody-listed.txt",
    ],
)
def test_dockerignore_keeps_local_state_and_dev_files_out(path: str) -> None:
    assert dockerignored(path)


@pytest.mark.parametrize(
    "path",
    [*RUNTIME_PATHS, "requirements.lock", "backend/main.py", "backend/web/static/app.css"],
)
def test_dockerignore_keeps_what_the_image_copies(path: str) -> None:
    assert not dockerignored(path)
