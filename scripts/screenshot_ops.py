"""Retake docs/ops-jobs.png, the picture of the operator page in README.md and docs/operating.md:

    make screenshot        (or: .venv/bin/python -m scripts.screenshot_ops [--out PATH])

A throwaway embedded Postgres, the app under uvicorn with the operator page on and its
worker off (so that the jobs hold still), jobs in every state as the tests seed them, a
relay state, and Debian's Chromium (/usr/bin/chromium) through Playwright, signed in with
basic auth (a password made for the run).
"""

import argparse
import asyncio
import secrets
import sys
from pathlib import Path

from playwright.async_api import async_playwright
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from backend.devstack import REPO_ROOT
from backend.devstack.app_process import AppProcess
from backend.devstack.chromium import CHROMIUM, launch_chromium
from backend.devstack.postgres import create_database, run_alembic, throwaway_postgres
from backend.devstack.sample_jobs import seed_jobs
from backend.settings import Settings

DEFAULT_OUT = REPO_ROOT / "docs" / "ops-jobs.png"


async def _prepare(database_url: str) -> None:
    await run_alembic(database_url, "upgrade", "head")
    engine = create_async_engine(database_url)
    try:
        await seed_jobs(engine)
        async with engine.begin() as connection:
            await connection.execute(
                text(
                    "INSERT INTO relay_status (relay, state, since) "
                    "VALUES ('smtp.example.com:587', 'available', now() - interval '2 hours')"
                )
            )
    finally:
        await engine.dispose()


async def _shoot(app_url: str, ops_password: str, out: Path) -> None:
    async with async_playwright() as playwright:
        browser = await launch_chromium(playwright)
        context = await browser.new_context(
            viewport={"width": 1280, "height": 800},
            http_credentials={"username": "ops", "password": ops_password},
        )
        page = await context.new_page()
        await page.goto(f"{app_url}/ops/jobs")
        await page.screenshot(path=out, full_page=True)
        await browser.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m scripts.screenshot_ops", description=__doc__)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args(argv)
    if not CHROMIUM.exists():
        print(f"no Chromium at {CHROMIUM} (apt-get install chromium)", file=sys.stderr)
        return 1
    with throwaway_postgres() as server_url:
        database_url = asyncio.run(create_database(server_url))
        asyncio.run(_prepare(database_url))
        ops_password = secrets.token_urlsafe(18)
        settings = Settings(
            _env_file=None,
            environment="test",
            # The browser calls the app by its address (ALLOWED_HOSTS).
            allowed_hosts="127.0.0.1",
            database_url=database_url,
            secret_key=secrets.token_urlsafe(32),
            ops_password=ops_password,
            job_worker_enabled=False,
        )
        with AppProcess(settings) as app:
            asyncio.run(_shoot(app.url, ops_password, args.out))
            app.delete_log()
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
