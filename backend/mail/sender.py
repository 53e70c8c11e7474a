"""Sending rendered emails through fastapi-mail.

fastapi-mail builds the MIME message and opens the SMTP connection. Two things are
done here on top of it, because its defaults don't fit durable delivery:
- the `Message-ID` is ours (chosen when the email was queued, stable across retries),
  replacing fastapi-mail's random one instead of adding a second header;
- a batch goes over one connection, with an outcome per message, so one refused
  recipient does not fail or hide the delivery of the others.
"""

import logging
from dataclasses import dataclass
from email.message import Message

import aiosmtplib
from fastapi_mail import ConnectionConfig, FastMail, MessageSchema, MessageType
from fastapi_mail.connection import Connection
from fastapi_mail.schemas import MultipartSubtypeEnum
from pydantic import NameEmail

from backend.mail.render import RenderedEmail

log = logging.getLogger(__name__)


class PermanentDeliveryError(Exception):
    """The server refused the message for good (5xx): retrying cannot help."""


@dataclass(frozen=True)
class OutgoingEmail:
    to: str
    to_name: str
    message_id: str
    content: RenderedEmail


@dataclass(frozen=True)
class SmtpSettings:
    server: str
    port: int
    sender: str
    sender_name: str | None = None
    username: str = ""
    password: str = ""
    starttls: bool = False
    ssl_tls: bool = False
    timeout_seconds: int = 15


class MailSender:
    def __init__(self, smtp: SmtpSettings) -> None:
        self._config = ConnectionConfig(
            MAIL_SERVER=smtp.server,
            MAIL_PORT=smtp.port,
            MAIL_FROM=smtp.sender,
            MAIL_FROM_NAME=smtp.sender_name,
            MAIL_USERNAME=smtp.username,
            MAIL_PASSWORD=smtp.password,
            USE_CREDENTIALS=bool(smtp.username),
            MAIL_STARTTLS=smtp.starttls,
            MAIL_SSL_TLS=smtp.ssl_tls,
            VALIDATE_CERTS=smtp.starttls or smtp.ssl_tls,
            TIMEOUT=smtp.timeout_seconds,
        )
        self._fastmail = FastMail(self._config)

    async def build(self, email: OutgoingEmail) -> Message:
        schema = MessageSchema(
            recipients=[NameEmail(email.to_name, smtp_address(email.to))],
            subject=email.content.subject,
            body=email.content.text,
            alternative_body=email.content.html,
            subtype=MessageType.plain,
            multipart_subtype=MultipartSubtypeEnum.alternative,
        )
        built = await self._fastmail.get_message(schema)
        assert isinstance(built, Message)
        message = _unwrap_related(built)
        message.replace_header("Message-ID", email.message_id)
        return message

    async def send_batch(self, emails: list[OutgoingEmail]) -> list[BaseException | None]:
        """Send over one SMTP connection; returns one outcome per email, None for delivered.

        Never raises for a delivery problem: a connection failure is every email's outcome.
        """
        outcomes: list[BaseException | None] = []
        try:
            async with Connection(self._config) as connection:
                smtp: aiosmtplib.SMTP = connection.session
                for email in emails:
                    if not smtp.is_connected:
                        raise aiosmtplib.SMTPServerDisconnected("connection lost mid-batch")
                    outcomes.append(await self._send_one(smtp, email))
        except Exception as exc:
            # Connecting failed, or the connection broke: what wasn't sent gets this error.
            # (An error from QUIT after everything was sent changes nothing.)
            outcomes.extend([exc] * (len(emails) - len(outcomes)))
        return outcomes

    async def _send_one(self, smtp: aiosmtplib.SMTP, email: OutgoingEmail) -> BaseException | None:
        try:
            message = await self.build(email)
        except Exception as exc:
            return PermanentDeliveryError(f"could not build the message: {exc!r}")
        return await _deliver(smtp, message)


async def _deliver(smtp: aiosmtplib.SMTP, message: Message) -> BaseException | None:
    try:
        await smtp.send_message(message)
    except aiosmtplib.SMTPRecipientsRefused as exc:
        if all(r.code >= 500 for r in exc.recipients):
            return PermanentDeliveryError(str(exc))
        return exc
    except aiosmtplib.SMTPResponseException as exc:
        if exc.code >= 500:
            return PermanentDeliveryError(f"{exc.code} {exc.message}")
        return exc
    return None


def smtp_address(address: str) -> str:
    """The address with its domain in ASCII (IDNA): `bücher.example` → `xn--bcher-kva.example`.

    Servers without SMTPUTF8 (most relays, MailHog) refuse a non-ASCII domain.
    """
    local, _, domain = address.rpartition("@")
    try:
        return f"{local}@{domain.encode('idna').decode('ascii')}"
    except UnicodeError:
        return address


def _unwrap_related(message: Message) -> Message:
    """fastapi-mail wraps a text+html alternative in multipart/related; lift it out.

    The contract is a top-level multipart/alternative; headers move to the inner part.
    """
    if message.get_content_type() != "multipart/related":
        return message
    parts = message.get_payload()
    if not (isinstance(parts, list) and len(parts) == 1):
        return message
    inner = parts[0]
    if not (isinstance(inner, Message) and inner.get_content_type() == "multipart/alternative"):
        return message
    for name, value in message.items():
        if name.lower() not in ("content-type", "mime-version", "content-transfer-encoding"):
            inner[name] = value
    if "MIME-Version" not in inner:
        inner["MIME-Version"] = "1.0"
    # set_charset() gave the container a base64 encoding, which a multipart must not have.
    del inner["Content-Transfer-Encoding"]
    return inner
