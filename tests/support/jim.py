"""Driving Jim, MailHog's chaos monkey, through his HTTP API, and a real SMTP client.

For the built-in inbox or the outside catcher of TEST_MAILHOG_URL. `jim_api()` turns Jim
off before and after, so that no test leaves him on for the next one, and leaves MailHog's
defaults as the settings a POST without a body brings back.
"""

from __future__ import annotations

import base64
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import aiosmtplib
import httpx
import pytest
from aiosmtplib import SMTPConnectError, SMTPServerDisconnected

from tests.support.mailhog import MailEndpoints, MailHog

PATH = "/api/v2/jim"
HELO = "jim.tests.local"
# MailHog's fields and defaults (MailHog-Server monkey/jim.go), in its order.
MAILHOG_DEFAULTS = {
    "DisconnectChance": 0.005,
    "AcceptChance": 0.99,
    "LinkSpeedAffect": 0.1,
    "LinkSpeedMin": 1024,
    "LinkSpeedMax": 10240,
    "RejectSenderChance": 0.05,
    "RejectRecipientChance": 0.05,
    "RejectAuthChance": 0.05,
}
MAILHOG_FIELDS = tuple(MAILHOG_DEFAULTS)
# No random faults at all.
CALM = {
    "DisconnectChance": 0,
    "AcceptChance": 1,
    "LinkSpeedAffect": 0,
    "LinkSpeedMin": 1024,
    "LinkSpeedMax": 10240,
    "RejectSenderChance": 0,
    "RejectRecipientChance": 0,
    "RejectAuthChance": 0,
}
REFUSED = (SMTPConnectError, SMTPServerDisconnected)  # closed before or instead of a greeting


class JimAPI:
    def __init__(self, http: httpx.AsyncClient, endpoints: MailEndpoints) -> None:
        self.http = http
        self.endpoints = endpoints

    async def settings(self) -> dict[str, Any]:
        response = await self.http.get(PATH)
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    async def on(self, **chances: float) -> None:
        """MailHog's Jim with no random faults but the ones given."""
        response = await self.http.post(PATH, json={**CALM, **chances})
        assert response.status_code == 201, response.text

    async def faults(self, *rules: dict[str, Any], **chances: float) -> None:
        """Our rules; skips the test on a catcher without them (a real MailHog)."""
        response = await self.http.post(PATH, json={"Faults": list(rules), **chances})
        assert response.status_code == 201, response.text
        if "Faults" not in await self.settings():
            pytest.skip("this mail catcher has no Faults rules (a real MailHog?)")

    async def require_faults(self) -> None:
        await self.faults()
        assert (await self.http.delete(PATH)).status_code == 200

    async def off(self) -> None:
        assert (await self.http.delete(PATH)).status_code == 200

    async def rule(self, index: int = 0) -> dict[str, Any]:
        rule: dict[str, Any] = (await self.settings())["Faults"][index]
        return rule

    async def connect(self) -> aiosmtplib.SMTP:
        smtp = aiosmtplib.SMTP(
            hostname=self.endpoints.smtp_host,
            port=self.endpoints.smtp_port,
            local_hostname=HELO,
            start_tls=False,
            timeout=5,
        )
        await smtp.connect()
        return smtp

    async def send(self, to: list[str], subject: str = "hi", sender: str = "jim@app.test") -> Any:
        smtp = await self.connect()
        try:
            return await smtp.sendmail(sender, to, message(to, subject))
        finally:
            smtp.close()


@asynccontextmanager
async def jim_api(mail_endpoints: MailEndpoints) -> AsyncIterator[JimAPI]:
    async with httpx.AsyncClient(base_url=mail_endpoints.api_url, timeout=10) as http:
        await http.delete(PATH)  # start from off, whatever came before
        try:
            yield JimAPI(http, mail_endpoints)
        finally:
            await http.delete(PATH)
            # As in MailHog, a POST without a body brings back the last settings sent:
            # leave MailHog's defaults there for whoever comes next.
            await http.post(PATH, json=MAILHOG_DEFAULTS)
            await http.delete(PATH)


def address(name: str) -> str:
    return f"{name}-{uuid.uuid4().hex[:8]}@example.com"


def message(to: list[str], subject: str) -> bytes:
    return f"To: {', '.join(to)}\r\nSubject: {subject}\r\n\r\nHello from the tests.\r\n".encode()


def plain_auth() -> bytes:
    return base64.b64encode(b"\0user\0secret")


async def stored(mailhog: MailHog, to: str) -> list[str]:
    """Recipients (envelope) of each message stored for `to`."""
    return [",".join(m.item["Raw"]["To"]) for m in await mailhog.to(to)]
