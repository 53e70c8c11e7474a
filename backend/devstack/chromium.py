"""Debian's Chromium (`apt-get install chromium`) driven headless through Playwright, for
the browser tests and scripts/screenshot_ops.py (Playwright cannot download its own here).
"""

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from playwright.async_api import Browser, Playwright

CHROMIUM = Path("/usr/bin/chromium")

# A closed network: keep Chromium from reaching out (it would only see refused connections).
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


async def launch_chromium(playwright: "Playwright") -> "Browser":
    return await playwright.chromium.launch(
        executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
    )
