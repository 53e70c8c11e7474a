"""`mail.wire.send` puts on the wire what aiosmtplib's `send_message` would: the same
bytes after DATA and the same MAIL FROM options, recorded by a real SMTP server."""

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import aiosmtplib
import pytest
from aiosmtpd.smtp import SMTP as SMTPServer

from backend.mail import wire
from backend.mail.render import RenderedEmail
from backend.mail.sender import MailSender, OutgoingEmail, SmtpSettings


@dataclass
class Received:
    sender: str
    recipients: list[str]
    options: list[str]
    data: bytes


@dataclass
class Recorder:
    received: list[Received] = field(default_factory=list)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.received.append(
            Received(
                envelope.mail_from,
                list(envelope.rcpt_tos),
                list(envelope.mail_options),
                envelope.original_content,
            )
        )
        return "250 OK"


@contextlib.asynccontextmanager
async def smtp_server(*, smtputf8: bool) -> AsyncIterator[tuple[int, Recorder]]:
    recorder = Recorder()
    server = await asyncio.get_running_loop().create_server(
        lambda: SMTPServer(recorder, enable_SMTPUTF8=smtputf8, decode_data=False),
        "127.0.0.1",
        0,
    )
    async with server:
        yield server.sockets[0].getsockname()[1], recorder


CASES = [
    ("ada@example.com", "ada", "Welcome, ada! Please confirm your email"),
    ("jürgen@example.com", "Jürgen Ä", "Willkommen, Jürgen! Bitte bestätigen"),
    ("bob@xn--strae-oqa.example", "bob", "A subject long enough that compat32 has to fold it " * 3),
    ("tab@example.com", "name\twith tab", "subject\twith a tab; and, punctuation = signs?"),
]


@pytest.mark.parametrize("smtputf8", [True, False], ids=["smtputf8", "no-smtputf8"])
@pytest.mark.parametrize(("to", "name", "subject"), CASES)
async def test_same_bytes_and_options_as_send_message(
    smtputf8: bool, to: str, name: str, subject: str
) -> None:
    async with smtp_server(smtputf8=smtputf8) as (port, recorder):
        await _send_both_ways(port, recorder, to, name, subject)


async def _send_both_ways(port: int, recorder: Recorder, to: str, name: str, subject: str) -> None:
    sender = MailSender(SmtpSettings(server="127.0.0.1", port=port, sender="noreply@example.com"))
    content = RenderedEmail(
        subject=subject, text=f"Hi {name},\n\nŁódź & ümlauts\n", html=f"<p>Hi {name}</p>"
    )
    email = OutgoingEmail(
        to=to, to_name=name, message_id="<wire-test@example.com>", content=content
    )
    message = await sender.build(email)

    outcomes: list[BaseException | str] = []
    for send in ("library", "ours"):
        smtp = aiosmtplib.SMTP(hostname="127.0.0.1", port=port)
        await smtp.connect()
        try:
            if send == "library":
                _, reply = await smtp.send_message(
                    message, sender="noreply@example.com", recipients=[to]
                )
            else:
                reply = await wire.send(smtp, message, sender="noreply@example.com", recipient=to)
            outcomes.append(reply)
        except aiosmtplib.SMTPException as exc:
            outcomes.append(exc)
        finally:
            await smtp.quit()

    if to.isascii() or len(recorder.received) == 2:
        assert outcomes == ["OK", "OK"]
        library, ours = recorder.received
        assert ours == library
        assert b"Message-ID: <wire-test@example.com>" in ours.data
    else:  # a non-ASCII address to a server without SMTPUTF8: refused alike, nothing sent
        assert [type(outcome) for outcome in outcomes] == [aiosmtplib.SMTPNotSupported] * 2
        assert recorder.received == []
