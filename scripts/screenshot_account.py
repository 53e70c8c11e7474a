"""Retake docs/account.png, the picture of /account with its "Your emails" table in
docs/mail-status.md:

    make screenshot        (or: .venv/bin/python -m scripts.screenshot_account [--out PATH])

A throwaway embedded Postgres, the app under uvicorn with its worker off (so that the
emails hold still), one confirmed user with emails in every state, signed in by a
session row made for the run, and Debian's Chromium (/usr/bin/chromium) through
Playwright.
"""

import argparse
import asyncio
import hashlib
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
from backend.settings import Settings
from backend.web.session_cookie import COOKIE_NAME

DEFAULT_OUT = REPO_ROOT / "docs" / "account.png"

_USER = text(
    """
    INSERT INTO users (id, username, email, password_hash, email_verified_at, created_at)
    VALUES (gen_random_uuid(), 'ada', 'ada@example.com', 'not-a-hash', now() - interval '2 days',
            now() - interval '3 days')
    RETURNING id
    """
)
_SESSION = text(
    """
    INSERT INTO sessions (user_id, token_hash, kind, expires_at)
    VALUES (:user_id, :token_hash, 'browser', now() + interval '1 hour')
    """
)
# Oldest first; the pending ones due in an hour, the running one leased for an hour.
_EMAILS = text(
    """
    INSERT INTO jobs (kind, payload, status, attempts, run_after, created_at, leased_until,
                      lease_token, last_error, finished_at)
    SELECT kind, jsonb_build_object('user_id', CAST(:user_id AS text), 'message_id', 'm' || n),
           status, attempts, now() + interval '1 hour', now() - make_interval(mins => 600 - n),
           CASE WHEN status = 'running' THEN now() + interval '1 hour' END,
           CASE WHEN status = 'running' THEN gen_random_uuid() END,
           error,
           CASE WHEN status IN ('succeeded', 'failed', 'cancelled')
                THEN now() - make_interval(mins => 600 - n - 1) END
    FROM (VALUES
        (1, 'email.welcome', 'succeeded', 1, NULL),
        (2, 'email.verification', 'failed', 1,
         'SMTPRecipientsRefused: 550 5.1.1 <***@example.com>: Recipient address rejected'),
        (3, 'email.password_reset', 'failed', 0,
         'suppressed: ***@example.com refused an earlier email for good'),
        (4, 'email.registration_attempt', 'cancelled', 0, NULL),
        (5, 'email.password_reset', 'pending', 0,
         'held: mail relay unavailable: SMTPConnectError: Connection refused'),
        (6, 'email.password_changed', 'running', 1, NULL),
        (7, 'email.verification', 'pending', 0, NULL)
    ) AS seed (n, kind, status, attempts, error)
    ORDER BY n
    """
)


async def _prepare(database_url: str, token: str) -> None:
    await run_alembic(database_url, "upgrade", "head")
    engine = create_async_engine(database_url)
    try:
        async with engine.begin() as connection:
            user_id = (await connection.execute(_USER)).scalar_one()
            token_hash = hashlib.sha256(token.encode()).hexdigest()
            await connection.execute(_SESSION, {"user_id": user_id, "token_hash": token_hash})
            await connection.execute(_EMAILS, {"user_id": str(user_id)})
    finally:
        await engine.dispose()


async def _shoot(app_url: str, token: str, out: Path) -> None:
    async with async_playwright() as playwright:
        browser = await launch_chromium(playwright)
        context = await browser.new_context(viewport={"width": 1280, "height": 800})
        await context.add_cookies([{"name": COOKIE_NAME, "value": token, "url": app_url}])
        page = await context.new_page()
        await page.goto(f"{app_url}/account")
        await page.screenshot(path=out, full_page=True)
        await browser.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m scripts.screenshot_account", description=__doc__
    )
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args(argv)
    if not CHROMIUM.exists():
        print(f"no Chromium at {CHROMIUM} (apt-get install chromium)", file=sys.stderr)
        return 1
    token = secrets.token_urlsafe(32)
    with throwaway_postgres() as server_url:
        database_url = asyncio.run(create_database(server_url))
        asyncio.run(_prepare(database_url, token))
        settings = Settings(
            _env_file=None,
            environment="test",
            # The browser calls the app by its address (ALLOWED_HOSTS).
            allowed_hosts="127.0.0.1",
            database_url=database_url,
            secret_key=secrets.token_urlsafe(32),
            job_worker_enabled=False,
        )
        with AppProcess(settings) as app:
            asyncio.run(_shoot(app.url, token, args.out))
            app.delete_log()
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
