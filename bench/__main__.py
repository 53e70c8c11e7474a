"""`make bench`: every measurement side by side in one run, written to bench/RESULTS.md.

    python -m bench [--emails 1000] [--rounds 3] [--skip-backlog] [--skip-load] [--skip-claims] ...

One embedded Postgres and one dev inbox (in its own process, as a relay would be) serve
all sections, which run one after the other so that none disturbs another:
- delivery: the backlog drain against a raw `smtplib` sender over one connection into
  the same inbox (`baseline.py`);
- connection reuse by mode and network, and the duplicate window (`backlog.py`);
- the relay: registration latency with SMTP frozen against live, and the delay from the
  relay's return to the last delivery after an outage (`relay.py`);
- registrations under load against the Argon2 ceiling (`load.py`);
- wake-ups: work committed in one process started in another, NOTIFY against polling,
  and what the NOTIFY costs its transaction (`wakeup.py`);
- claims beside a backlog held by a relay outage, against the previous claim query
  (`claims.py`);
- sign-ins under load against the Argon2 verify ceiling, and an unknown account's answer
  time against a wrong password's (`signin.py`).
"""

import argparse
import asyncio
import logging
import os
import platform
import socket
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx

from backend.devstack.postgres import create_database, run_alembic, throwaway_postgres
from backend.log_config import ContextFilter, JsonLines
from backend.settings import Settings
from bench import backlog, baseline, claims, load, relay, signin, wakeup

RESULTS = Path(__file__).with_name("RESULTS.md")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _log_like_production(path: Path) -> None:
    """The app's lines as production writes them (JSON, INFO: a line per delivery), into a
    file: the drains that run in this process pay for their logging as the app would."""
    handler = logging.FileHandler(path)
    handler.setFormatter(JsonLines())
    handler.addFilter(ContextFilter())
    logging.getLogger().addHandler(handler)
    logging.getLogger("backend").setLevel(logging.INFO)


async def _run(server_url: str, smtp_port: int, inbox_url: str, args: argparse.Namespace) -> str:
    database_url = await create_database(server_url)
    await run_alembic(database_url, "upgrade", "head")
    base = Settings(
        _env_file=None,
        environment="development",
        database_url=database_url,
        mail_port=smtp_port,
        # Sections that run as a deployment (ENVIRONMENT=test) still call the app by address.
        allowed_hosts="127.0.0.1",
    )
    sections = [
        "# Benchmark results",
        "",
        f"`make bench` on {datetime.now(UTC):%Y-%m-%d %H:%M} UTC: Python "
        f"{platform.python_version()}, {platform.machine()}, {os.cpu_count()} cores, embedded "
        "Postgres, the dev inbox (aiosmtpd) in its own process. Ratios measured side by side "
        "in this run are the figures to compare; absolute times depend on the machine, which "
        "is shared and noisy. The drains (run in this process) log as the app does in "
        "production: JSON lines at INFO, to a file.",
        "",
    ]
    if not args.skip_backlog:
        sections.append(await baseline.run(base, inbox_url, args))
        sections.append(await backlog.run(database_url, smtp_port, inbox_url, args))
    if not args.skip_relay:
        sections.append(await relay.run(base, inbox_url))
    if not args.skip_load:
        sections.append(load.report(*await load.run(base)))
    if not args.skip_wakeup:
        sections.append(await wakeup.run(base))
    if not args.skip_claims:
        sections.append(await claims.run(server_url))
    if not args.skip_signin:
        sections.append(await signin.run(base))
    return "\n".join(sections)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--emails", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--skip-backlog", action="store_true", help="no drain measurements")
    parser.add_argument("--skip-relay", action="store_true", help="no frozen relay or outage")
    parser.add_argument("--skip-load", action="store_true", help="no registrations under load")
    parser.add_argument("--skip-wakeup", action="store_true", help="no NOTIFY against polling")
    parser.add_argument("--skip-claims", action="store_true", help="no claims beside a backlog")
    parser.add_argument("--skip-signin", action="store_true", help="no sign-ins under load")
    args = parser.parse_args()

    smtp_port, http_port = _free_port(), _free_port()
    ports = ["--smtp-port", str(smtp_port), "--http-port", str(http_port)]
    inbox = subprocess.Popen(
        [sys.executable, "-m", "backend.devstack.inbox", *ports], stdout=subprocess.DEVNULL
    )
    inbox_url = f"http://127.0.0.1:{http_port}"
    try:
        for _ in range(100):
            try:
                httpx.get(f"{inbox_url}/api/v2/messages", timeout=1)
                break
            except httpx.HTTPError:
                time.sleep(0.1)
        with tempfile.TemporaryDirectory(prefix="bench-") as root, throwaway_postgres() as server:
            _log_like_production(Path(root) / "app.log")
            report = asyncio.run(_run(server, smtp_port, inbox_url, args))
    finally:
        inbox.terminate()
        inbox.wait(timeout=10)
    RESULTS.write_text(report)
    print(f"\n{report}\nwritten to {RESULTS}")


if __name__ == "__main__":
    main()
