"""Reading delivered mail through the MailHog HTTP API (ours or a real MailHog).

Bodies are base64-encoded by fastapi-mail, so MailHog's `containing` search can't
see them: messages are parsed from `Raw.Data` and their MIME parts decoded here.
"""

import asyncio
import email
import email.policy
import time
from dataclasses import dataclass
from email.message import EmailMessage
from typing import Any

import httpx


@dataclass(frozen=True)
class MailEndpoints:
    """Where the mail server is: SMTP, and the MailHog API."""

    smtp_host: str
    smtp_port: int
    api_url: str


@dataclass(frozen=True)
class Delivered:
    item: dict[str, Any]  # the MailHog JSON item
    message: EmailMessage  # parsed from Raw.Data

    @property
    def to(self) -> list[str]:
        return [f"{p['Mailbox']}@{p['Domain']}" for p in self.item["To"]]

    @property
    def subject(self) -> str:
        return str(self.message["Subject"])

    @property
    def message_ids(self) -> list[str]:
        return [str(v) for v in self.message.get_all("Message-ID", [])]

    def part(self, content_type: str) -> str:
        for part in self.message.walk():
            if part.get_content_type() == content_type and not part.is_multipart():
                return str(part.get_content())
        raise AssertionError(f"no {content_type} part in {self.message.get_content_type()}")


class MailHog:
    def __init__(self, api_url: str) -> None:
        self.api_url = api_url.rstrip("/")

    async def _get(self, path: str, **params: Any) -> Any:
        async with httpx.AsyncClient(base_url=self.api_url, timeout=10) as client:
            response = await client.get(path, params=params)
            response.raise_for_status()
            return response.json()

    async def messages(self) -> list[Delivered]:
        data = await self._get("/api/v2/messages", limit=5000)
        return [_delivered(item) for item in data["items"]]

    async def search(self, kind: str, query: str) -> list[Delivered]:
        data = await self._get("/api/v2/search", kind=kind, query=query, limit=5000)
        return [_delivered(item) for item in data["items"]]

    async def to(self, address: str) -> list[Delivered]:
        return [m for m in await self.search("to", address) if address.lower() in m.to]

    async def clear(self) -> None:
        async with httpx.AsyncClient(base_url=self.api_url, timeout=10) as client:
            (await client.delete("/api/v1/messages")).raise_for_status()

    async def wait_for(self, count: int, *, within: float = 20.0) -> list[Delivered]:
        """Wait until at least `count` messages arrived; returns them all."""
        deadline = time.monotonic() + within
        while True:
            found = await self.messages()
            if len(found) >= count or time.monotonic() > deadline:
                return found
            await asyncio.sleep(0.1)


def _delivered(item: dict[str, Any]) -> Delivered:
    message = email.message_from_string(item["Raw"]["Data"], policy=email.policy.default)
    assert isinstance(message, EmailMessage)
    return Delivered(item=item, message=message)
