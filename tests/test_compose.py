"""The Docker setup, checked offline: no Docker engine is needed (or used) here.

What can be checked without running containers: docker-compose.yml wires the services
together the way the app reads its settings, the Dockerfile ships every path the app needs
and migrates before serving, and .dockerignore keeps local state out of the image.
"""

import fnmatch
import json
import posixpath
import re
import shlex
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from backend.settings import DEFAULT_SECRET_KEY, Settings

ROOT = Path(__file__).resolve().parent.parent
COMPOSE_FILE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"

# Top-level paths the app needs at runtime: the package, the migrations beside alembic.ini,
# and the templates beside the package (backend/context.py: TEMPLATES_DIR).
RUNTIME_PATHS = ("backend", "migrations", "templates", "alembic.ini")

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
    ports: dict[int, int] = {}
    for entry in service.get("ports", []):
        if isinstance(entry, dict):
            ports[int(entry["target"])] = int(entry["published"])
            continue
        spec = str(entry).split("/", 1)[0]
        parts = spec.split(":")
        assert len(parts) >= 2, f"port {entry!r} is not published on the host"
        ports[int(parts[-1])] = int(parts[-2])
    return ports


def healthcheck_command(service: dict[str, Any]) -> list[str]:
    test = service["healthcheck"]["test"]
    if isinstance(test, str):
        return ["CMD-SHELL", test]
    return [str(part) for part in test]


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined, comments dropped."""
    instructions: list[tuple[str, str]] = []
    pending = ""
    for line in DOCKERFILE.read_text().splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        keyword, _, arguments = (pending + stripped).partition(" ")
        instructions.append((keyword.upper(), arguments.strip()))
        pending = ""
    assert not pending, "Dockerfile ends in a line continuation"
    return instructions


def instruction_args(keyword: str) -> list[str]:
    return [args for name, args in dockerfile_instructions() if name == keyword]


def exec_form(arguments: str) -> list[str]:
    parsed = json.loads(arguments)
    assert isinstance(parsed, list), f"expected the JSON (exec) form, got {arguments!r}"
    return [str(part) for part in parsed]


def strip_flags(arguments: str) -> list[str]:
    return [word for word in shlex.split(arguments) if not word.startswith("--")]


def workdir() -> str:
    dirs = instruction_args("WORKDIR")
    assert dirs, "the Dockerfile sets no WORKDIR"
    path = "/"
    for directory in dirs:
        path = posixpath.normpath(posixpath.join(path, directory))
    return path


def copied_paths() -> dict[str, str]:
    """Each COPY source -> where it lands in the image (for a directory: the directory)."""
    base = workdir()
    landed: dict[str, str] = {}
    for arguments in instruction_args("COPY"):
        words = strip_flags(arguments)
        if words[0].startswith("["):
            words = exec_form(arguments)
        *sources, destination = words
        into_directory = destination.endswith("/") or destination == "." or len(sources) > 1
        target = posixpath.normpath(posixpath.join(base, destination))
        for source in sources:
            name = source.rstrip("/")
            if (ROOT / name).is_dir():
                # COPY copies a directory's *contents*, so the destination is the directory.
                landed[name] = target
            elif into_directory:
                landed[name] = posixpath.join(target, posixpath.basename(name))
            else:
                landed[name] = target
    return landed


def shell_command(arguments: str) -> str:
    words = exec_form(arguments)
    if words[:2] == ["sh", "-c"] or words[:2] == ["/bin/sh", "-c"]:
        return words[2]
    return shlex.join(words)


def dockerignore_patterns() -> list[str]:
    lines = (line.strip() for line in DOCKERIGNORE.read_text().splitlines())
    return [line for line in lines if line and not line.startswith("#")]


def dockerignored(path: str) -> bool:
    """Whether the build context leaves `path` out (last matching pattern wins)."""
    excluded = False
    for pattern in dockerignore_patterns():
        negated = pattern.startswith("!")
        cleaned = pattern.lstrip("!").strip("/")
        candidates = [cleaned]
        if cleaned.startswith("**/"):
            candidates.append(cleaned[3:])
        if any(fnmatch.fnmatchcase(path, candidate) for candidate in candidates):
            excluded = not negated
    return excluded


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


def test_compose_has_the_three_services_and_no_obsolete_version(compose: dict[str, Any]) -> None:
    assert set(as_mapping(compose["services"])) == {"db", "mailhog", "app"}
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
    assert published_ports(mailhog) == {
        MAILHOG_SMTP_PORT: MAILHOG_SMTP_PORT,
        MAILHOG_HTTP_PORT: MAILHOG_HTTP_PORT,
    }


def test_app_is_built_here_published_on_8000_and_waits_for_a_healthy_db(
    services: dict[str, dict[str, Any]],
) -> None:
    app = services["app"]
    build = app["build"]
    assert (build if isinstance(build, str) else as_mapping(build)["context"]) == "."
    assert published_ports(app) == {8000: 8000}
    depends_on = as_mapping(app["depends_on"])
    assert as_mapping(depends_on["db"])["condition"] == "service_healthy"
    assert as_mapping(depends_on["mailhog"])["condition"] == "service_started"
    assert app["restart"] == "unless-stopped"


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
    (healthcheck,) = instruction_args("HEALTHCHECK")
    dockerfile_command = exec_form(healthcheck.split(" CMD ", 1)[1])
    assert healthcheck_command(services["app"]) == ["CMD", *dockerfile_command]
    assert "http://127.0.0.1:8000/healthz" in dockerfile_command[-1]
    assert "urllib.request" in dockerfile_command[-1]


# --- Dockerfile ------------------------------------------------------------------------


def test_dockerfile_base_image_env_and_port() -> None:
    assert instruction_args("FROM") == ["python:3.12-slim"]
    env = " ".join(instruction_args("ENV"))
    assert "PYTHONDONTWRITEBYTECODE=1" in env.split()
    assert "PYTHONUNBUFFERED=1" in env.split()
    assert instruction_args("EXPOSE") == ["8000"]


def test_dockerfile_copies_what_the_app_needs_at_runtime() -> None:
    base = workdir()
    landed = copied_paths()
    for path in RUNTIME_PATHS:
        assert landed.get(path) == posixpath.join(base, path), f"{path} is not at {base}/{path}"
    # backend/context.py looks for templates/ beside the package; alembic.ini names
    # `%(here)s/migrations`: all of them must share one directory, the working directory.
    assert {str(PurePosixPath(landed[path]).parent) for path in RUNTIME_PATHS} == {base}


def test_dockerfile_installs_runtime_dependencies_only_before_the_source() -> None:
    instructions = dockerfile_instructions()
    installs = [
        index
        for index, (name, args) in enumerate(instructions)
        if name == "RUN" and "pip install" in args
    ]
    assert installs, "the Dockerfile installs nothing"
    for index in installs:
        args = instructions[index][1]
        assert "--no-cache-dir" in args
        assert "[dev]" not in args
        assert "optional-dependencies" not in args
    source_copy = next(
        index
        for index, (name, args) in enumerate(instructions)
        if name == "COPY" and "backend" in strip_flags(args)[:-1]
    )
    # Dependencies are a layer of their own, so a source edit does not reinstall them.
    assert max(installs) < source_copy
    assert "apt-get" not in DOCKERFILE.read_text()


def test_dockerfile_runs_as_a_non_root_user() -> None:
    instructions = dockerfile_instructions()
    users = [(index, args) for index, (name, args) in enumerate(instructions) if name == "USER"]
    assert users, "the container would run as root"
    last_index, user = users[-1]
    assert user.split(":")[0] not in ("root", "0")
    cmd_index = max(index for index, (name, _) in enumerate(instructions) if name == "CMD")
    assert last_index < cmd_index


def test_dockerfile_migrates_then_serves() -> None:
    (cmd,) = instruction_args("CMD")
    command = shell_command(cmd)
    migrate, _, serve = command.partition("&&")
    # `&&`: a failed migration stops the start instead of serving a stale schema.
    assert migrate.split() == ["alembic", "upgrade", "head"]
    serve_words = serve.split()
    # `exec` makes uvicorn PID 1, so `docker stop` reaches it with SIGTERM.
    assert serve_words[:3] == ["exec", "uvicorn", "backend.main:app"]
    assert serve_words[serve_words.index("--host") + 1] == "0.0.0.0"
    assert serve_words[serve_words.index("--port") + 1] == "8000"
    # The app reads X-Forwarded-For itself (TRUSTED_PROXIES) and needs the real peer.
    assert "--no-proxy-headers" in serve_words and "--proxy-headers" not in serve_words


# --- .dockerignore ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "path",
    [".venv", ".git", ".env", ".devdata", "tests", ".mypy_cache", "backend/__pycache__"],
)
def test_dockerignore_keeps_local_state_out(path: str) -> None:
    assert dockerignored(path)


@pytest.mark.parametrize("path", [*RUNTIME_PATHS, "pyproject.toml"])
def test_dockerignore_keeps_what_the_image_copies(path: str) -> None:
    assert not dockerignored(path)
