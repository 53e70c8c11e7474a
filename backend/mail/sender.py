"""Sending rendered emails through fastapi-mail, the way a mail transfer agent would.

fastapi-mail builds the MIME message and opens the SMTP connections. On top of it:
- the `Message-ID` is ours (chosen when the email was queued, stable across retries),
  replacing fastapi-mail's random one instead of adding a second header;
- a batch goes over one connection (reused across batches while a backlog drains),
  each message with its own outcome, reported the moment the relay answers it;
- a failure is classified by where it happened (`faults.py`): the relay's problems
  stop the batch and are reported to the relay monitor, which holds all sending until
  a probe finds the relay back; a message's problems are that message's alone;
- the pace is capped per relay, across every process that shares the database
  (`MAIL_SEND_RATE`, `shared_pace.py`).
"""

import logging
import secrets
from collections import deque
from collections.abc import AsyncGenerator, Sequence
from dataclasses import dataclass
from email.message import Message
from typing import TYPE_CHECKING

import aiosmtplib
from fastapi_mail import ConnectionConfig, FastMail, MessageSchema, MessageType
from fastapi_mail.schemas import MultipartSubtypeEnum
from pydantic import NameEmail
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from backend.mail import wire
from backend.mail.addresses import smtp_address
from backend.mail.connections import ConnectionPool, quit_quietly
from backend.mail.faults import Fault, classify, describe
from backend.mail.pace import SendPace
from backend.mail.relay import RelayMonitor
from backend.mail.render import RenderedEmail
from backend.mail.shared_pace import SharedPace
from backend.observability import metrics, tracing
from backend.observability.request_context import LogContext, scope

if TYPE_CHECKING:
    from backend.observability.otel import Spans

log = logging.getLogger(__name__)

_STAND_IN = "smtputf8-recipient@stand-in.invalid"


@dataclass(frozen=True)
class OutgoingEmail:
    to: str
    to_name: str
    message_id: str
    content: RenderedEmail
    # Bound while this message is sent: its lines carry its job and the job's request.
    log_context: LogContext | None = None
    # With traces on: the job's span (covering the send) and its parent, the request's.
    trace: tracing.JobTrace | None = None


@dataclass(frozen=True)
class NotDelivered:
    fault: Fault
    error: str


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
    send_rate: str = ""
    probe_seconds: float = 2.0
    idle_seconds: float = 5.0


class MailSender:
    def __init__(
        self,
        smtp: SmtpSettings,
        *,
        status_sessionmaker: async_sessionmaker[AsyncSession] | None = None,
    ) -> None:
        self._smtp = smtp
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
        metrics.smtp_faults(fault.name.lower() for fault in Fault)
        self._envelope_sender = smtp_address(smtp.sender)
        self._pool = ConnectionPool(self._config, idle_seconds=smtp.idle_seconds)
        relay_name = f"{smtp.server}:{smtp.port}"
        # Without a rate, nothing is read or written per message.
        self._pace: SendPace | SharedPace = SendPace(smtp.send_rate)
        if smtp.send_rate and status_sessionmaker is not None:
            self._pace = SharedPace(
                smtp.send_rate, relay=relay_name, sessionmaker=status_sessionmaker
            )
        self.relay = RelayMonitor(
            name=relay_name,
            probe=self.probe,
            probe_seconds=smtp.probe_seconds,
            sessionmaker=status_sessionmaker,
        )

    async def build(self, email: OutgoingEmail) -> Message:
        recipient = smtp_address(email.to)
        # fastapi-mail formats the To header with email.utils.formataddr, which cannot
        # take a non-ASCII local part: build with a stand-in, then put the real address
        # in (aiosmtplib then sends it with SMTPUTF8, which the relay must offer).
        stand_in = recipient if recipient.isascii() else _STAND_IN
        schema = MessageSchema(
            recipients=[NameEmail(email.to_name, stand_in)],
            subject=email.content.subject,
            body=email.content.text,
            alternative_body=email.content.html,
            subtype=MessageType.plain,
            multipart_subtype=MultipartSubtypeEnum.alternative,
            # Given ours, fastapi-mail skips make_msgid(), whose socket.getfqdn() is a
            # resolver lookup per message; it then adds the header a second time, so
            # both copies are replaced by one below.
            headers={"message-id": email.message_id},
        )
        built = await self._fastmail.get_message(schema)
        assert isinstance(built, Message)
        message = _unwrap_related(built)
        del message["Message-ID"]
        message["Message-ID"] = email.message_id
        # Left unset, the generator picks a boundary at flattening and compiles a regex for
        # it to check the body: a fresh pattern per message that also evicts everyone's
        # cached ones (a fifth of a drain's CPU). "=_" cannot occur in base64 or
        # quoted-printable text, so no check is needed.
        message.set_boundary(f"=_{secrets.token_hex(16)}")
        if stand_in != recipient:
            message.replace_header("To", str(message["To"]).replace(stand_in, recipient))
        return message

    async def deliver(
        self, emails: Sequence[OutgoingEmail]
    ) -> AsyncGenerator[tuple[OutgoingEmail, NotDelivered | None], None]:
        """Send, yielding each email's outcome (None: the relay accepted it) as it comes.

        Stops asking the relay as soon as it fails us; what was not sent is then yielded
        as held by the relay. Stopping the iteration (`aclose`) stops sending at once.
        """
        pending = deque(emails)
        # A dropped or refused connection is retried once at once: flaky relays drop
        # single connections; two failures in a row mean the relay is down.
        connection_failures = 0
        while pending:
            if not self.relay.ready():
                held = NotDelivered(Fault.RELAY_UNAVAILABLE, self._held_reason())
                while pending:
                    yield pending.popleft(), held
                return
            try:
                smtp = await self._pool.acquire()
            except Exception as exc:
                connection_failures += 1
                fault = classify(exc)
                metrics.smtp_failure(fault.name.lower(), "send")
                if fault is Fault.RELAY_UNAVAILABLE and connection_failures < 2:
                    continue
                # Failing to connect is never the message's fault.
                self.relay.report(
                    fault if fault.is_relays else Fault.RELAY_UNAVAILABLE, describe(exc)
                )
                continue
            reusable = False
            try:
                while pending:
                    email = pending[0]
                    await self._pace.wait_turn()
                    error = await self._send_one(smtp, email)
                    if error is None:
                        pending.popleft()
                        connection_failures = 0
                        self.relay.report_delivered()
                        yield email, None
                        continue
                    fault = classify(error)
                    metrics.smtp_failure(fault.name.lower(), "send")
                    if fault is Fault.RELAY_UNAVAILABLE and connection_failures == 0:
                        connection_failures += 1
                        break  # reconnect once before calling the relay down
                    if fault.is_relays:
                        self.relay.report(fault, describe(error))
                        break
                    pending.popleft()
                    if fault is Fault.UNEXPECTED:
                        with scope(email.log_context):
                            log.error(
                                "sending %s failed unexpectedly", email.message_id, exc_info=error
                            )
                    yield email, NotDelivered(fault, describe(error))
                    if fault is Fault.UNEXPECTED and not await _reset(smtp):
                        break
                else:
                    reusable = True
            finally:
                self._pool.give_back(smtp, reusable=reusable)

    async def probe(self) -> None:
        """Check the relay as a send would, short of sending: connect, EHLO, AUTH (when
        configured) and MAIL FROM, then RSET and QUIT. Raises what the relay answered."""
        smtp = await self._pool.open()
        try:
            await smtp.ehlo()
            await smtp.mail(smtp_address(self._smtp.sender))
            await smtp.rset()
        finally:
            await quit_quietly(smtp)

    async def close(self) -> None:
        await self.relay.close()
        await self._pace.close()
        await self._pool.close()

    async def _send_one(self, smtp: aiosmtplib.SMTP, email: OutgoingEmail) -> BaseException | None:
        with scope(email.log_context):
            spans = tracing.active  # checked once per message: None while traces are off
            if spans is None or email.trace is None:
                return await self._send(smtp, email, None)
            with spans.job(email.trace) as job_span:
                error = await self._send(smtp, email, spans)
                spans.job_outcome(job_span, "delivered" if error is None else classify(error).value)
                return error

    async def _send(
        self, smtp: aiosmtplib.SMTP, email: OutgoingEmail, spans: "Spans | None"
    ) -> BaseException | None:
        try:
            message = await self.build(email)
            # The envelope is known: it need not be parsed back out of the headers.
            sending = wire.send(
                smtp, message, sender=self._envelope_sender, recipient=smtp_address(email.to)
            )
            if spans is None:
                reply = await sending
            else:
                with spans.smtp_send(server=self._smtp.server, port=self._smtp.port):
                    reply = await sending
        except Exception as exc:
            return exc
        # aiosmtplib raises unless the DATA reply is 250, and returns its text (the
        # relay's queue id, usually): the line that says where the email went.
        log.info("delivered %s to the relay: 250 %s", email.message_id, reply)
        return None

    def _held_reason(self) -> str:
        return f"held: mail relay {self.relay.state.value}: {self.relay.last_error}"


async def _reset(smtp: aiosmtplib.SMTP) -> bool:
    """After an unexpected failure the session's state is unknown: RSET, or start anew."""
    try:
        await smtp.rset()
    except Exception:
        return False
    return True


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
