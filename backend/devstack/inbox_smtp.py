"""The dev inbox's SMTP server: aiosmtpd, storing every message, with Jim's hooks in it.

While Jim is off this is a plain SMTP sink that accepts any sender, recipient and (as
MailHog does) any AUTH PLAIN/LOGIN credentials. While he is on, ``JimSMTP`` asks him at
each occasion, in this order: our fault rules for that stage, then MailHog's dice.

- at accept, before the greeting: ``connect`` rules, then ``AcceptChance`` and the link
  speed for this connection;
- before ``HELO``/``EHLO``, ``AUTH``, ``MAIL``, ``RCPT`` are looked at: that stage's rules
  (a rule acts on the command as it arrives);
- once ``MAIL``/``RCPT`` have passed aiosmtpd's checks, and at AUTH's credentials: the
  sender/recipient/auth rejection chances (``InboxHandler``, ``_check_credentials``);
- once the message content is in: ``data`` rules (and, as MailHog reads 1 KiB at a time
  and rolls for a disconnect after each read, one disconnect roll per further KiB),
  then storing it, then ``after_data`` rules;
- after each command's reply: ``DisconnectChance``, unless a rule fired on that command.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import math
import re
from collections.abc import Awaitable, Callable
from typing import Any, AnyStr, cast

from aiosmtpd.smtp import MISSING, SMTP, AuthResult, Envelope, Session

from backend.devstack.inbox_store import MessageStore, StoredMessage
from backend.devstack.jim import (
    REJECTED_AUTH_REPLY,
    Jim,
    Rule,
    Stage,
    rejected_recipient_reply,
    rejected_sender_reply,
)
from backend.devstack.link_speed import LinkSpeed, ThrottledReader
from backend.devstack.mailhog_format import HOSTNAME, build_message

MAX_MESSAGE_BYTES = 32 * 1024 * 1024
MAILHOG_READ_SIZE = 1024  # MailHog's Session.Read buffer: one disconnect roll per read
_STAGE_OF_COMMAND: dict[str, Stage] = {
    "HELO": "helo",
    "EHLO": "helo",
    "AUTH": "auth",
    "MAIL": "mail",
    "RCPT": "rcpt",
}
_ADDRESS = re.compile(r"<([^>]*)>")


class _QuietLoginData(logging.Filter):
    """aiosmtpd warns about its own use of ``Session.login_data`` on every AUTH; drop it."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "login_data is deprecated" not in record.getMessage()


logging.getLogger("mail.log").addFilter(_QuietLoginData())


class JimSMTP(SMTP):
    def __init__(
        self, handler: InboxHandler, jim: Jim, loop: asyncio.AbstractEventLoop | None = None
    ) -> None:
        super().__init__(
            handler,
            hostname=HOSTNAME,  # avoids a getfqdn() DNS lookup per connection
            data_size_limit=MAX_MESSAGE_BYTES,
            enable_SMTPUTF8=True,
            # MailHog offers AUTH without TLS and takes any credentials.
            auth_require_tls=False,
            authenticator=self._check_credentials,
            loop=loop,
        )
        self.jim = jim
        self.ruled = False  # a rule fired on the current command: no dice for it
        self._dropped = False
        self._speed: LinkSpeed | None = None
        self._smtp_methods = {
            command: self._with_jim(command, method)
            for command, method in self._smtp_methods.items()
        }

    def drop(self) -> None:
        """Closes the connection at once; nothing more is sent or read."""
        self._dropped = True
        if self.transport is not None:
            self.transport.close()
        if self._handler_coroutine is not None:
            self._handler_coroutine.cancel()

    async def reply_and_drop(self, reply: str) -> None:
        await self.push(reply)
        self.drop()

    async def push(self, status: AnyStr) -> None:
        if self._dropped:
            return
        speed = self._speed
        if speed is None or not speed.active:
            await super().push(status)
            return
        line = status.encode() if isinstance(status, str) else status
        for chunk in speed.chunks(line + b"\r\n"):
            self._writer.write(chunk)
            await self._writer.drain()
            await speed.pace(len(chunk))

    async def _handle_client(self) -> None:
        if self.jim.enabled and not await self._on_connect():
            return
        await super()._handle_client()

    async def _on_connect(self) -> bool:
        """Jim's say at accept; False when the connection ends before the greeting."""
        rule = self.jim.fault("connect")
        if rule is None:
            if self.jim.refuses_connection():
                self.drop()
                return False
            rate = self.jim.link_speed()
            if rate is not None:
                self._speed = speed = LinkSpeed(self.jim, rate)
                # Duck-typed: aiosmtpd only reads with readuntil, readline and read.
                self._reader = cast(asyncio.StreamReader, ThrottledReader(self._reader, speed))
            return True
        if rule.action == "hang":
            await self.jim.hold(rule.seconds)
            return True
        if rule.action == "reply":
            assert rule.reply is not None
            await self.push(rule.reply)
        self.drop()
        return False

    def _with_jim(
        self, command: str, method: Callable[[str | None], Awaitable[None]]
    ) -> Callable[[str | None], Awaitable[None]]:
        stage = _STAGE_OF_COMMAND.get(command)

        @functools.wraps(method)  # keeps aiosmtpd's syntax marks for HELP
        async def run(arg: str | None) -> None:
            self.ruled = False
            if stage is not None and await self.apply_rule(stage, _addresses(stage, arg)):
                return
            await method(arg)
            if not self.ruled and self.jim.disconnects():
                self.drop()  # MailHog: after the reply, "kicking them off"

        return run

    async def apply_rule(self, stage: Stage, addresses: list[str]) -> bool:
        """Acts on the rule that fires here, if any; True when it took the command's place.

        A hang holds the command, which then goes on as usual.
        """
        rule = self.jim.fault(stage, addresses)
        if rule is None:
            return False
        self.ruled = True
        if rule.action == "hang":
            await self.jim.hold(rule.seconds)
            return False
        if rule.action == "reply":
            assert rule.reply is not None
            if _closes(rule):
                await self.reply_and_drop(rule.reply)
            else:
                await self.push(rule.reply)
        else:
            self.drop()
        return True

    def _check_credentials(
        self, server: SMTP, session: Session, envelope: Envelope, mechanism: str, auth_data: Any
    ) -> AuthResult:
        if not self.ruled and self.jim.rejects_auth():
            return AuthResult(success=False, handled=False, message=REJECTED_AUTH_REPLY)
        return AuthResult(success=True, auth_data=auth_data)


class InboxHandler:
    """aiosmtpd's hooks: Jim's sender/recipient rejections, and storing the message."""

    def __init__(self, store: MessageStore) -> None:
        self._store = store

    async def handle_MAIL(
        self, server: JimSMTP, session: Session, envelope: Envelope, address: str, options: Any
    ) -> Any:
        if not server.ruled and server.jim.rejects_sender():
            return rejected_sender_reply(address)
        return MISSING  # aiosmtpd goes on as usual

    async def handle_RCPT(
        self, server: JimSMTP, session: Session, envelope: Envelope, address: str, options: Any
    ) -> Any:
        if not server.ruled and server.jim.rejects_recipient():
            return rejected_recipient_reply(address)
        return MISSING

    async def handle_DATA(self, server: JimSMTP, session: Session, envelope: Envelope) -> str:
        jim = server.jim
        raw: bytes = envelope.original_content or b""
        reply: str | None = None
        rule = jim.fault("data", envelope.rcpt_tos)
        if rule is not None:
            server.ruled = True
            if rule.action == "disconnect":
                server.drop()
                return ""  # never sent
            if rule.action == "reply":
                assert rule.reply is not None
                if not rule.reply.startswith("2"):  # refused: nothing is stored
                    if _closes(rule):
                        await server.reply_and_drop(rule.reply)
                    return rule.reply
                reply = rule.reply
            else:
                await jim.hold(rule.seconds)
        elif _drops_during_data(jim, len(raw)):
            server.drop()
            return ""
        message_id = self._keep(raw, envelope, session)
        reply = reply or f"250 Ok: queued as {message_id}"
        if jim.fault("after_data", envelope.rcpt_tos) is not None:
            server.ruled = True
            await server.reply_and_drop(reply)
        return reply

    def _keep(self, raw: bytes, envelope: Envelope, session: Session) -> str:
        message = build_message(
            raw, envelope.mail_from or "", envelope.rcpt_tos, session.host_name or ""
        )
        self._store.add(StoredMessage(message, raw))
        return message["ID"]


def _addresses(stage: Stage, arg: str | None) -> list[str]:
    """The address of ``MAIL FROM:<a>`` / ``RCPT TO:<a>``, for a rule's Match."""
    if stage not in ("mail", "rcpt") or not arg:
        return []
    found = _ADDRESS.search(arg)
    if found:
        return [found.group(1)]
    return arg.partition(":")[2].split()[:1]


def _closes(rule: Rule) -> bool:
    """A 421 reply means the server closes the connection (RFC 5321 3.8)."""
    return rule.reply is not None and rule.reply.startswith("421")


def _drops_during_data(jim: Jim, size: int) -> bool:
    """MailHog's disconnect rolls for the reads before the last one of the content."""
    reads = math.ceil(size / MAILHOG_READ_SIZE)
    return any(jim.disconnects() for _ in range(reads - 1))
