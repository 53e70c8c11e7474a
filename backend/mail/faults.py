"""What an SMTP failure means, by where it happened: the relay's problem or the message's.

A mail transfer agent never blames a message for how the relay felt at one moment:
- the relay is unavailable (refused, timed out, dropped, no greeting, 421, TLS): wait
  for it, probing, and send everything as soon as it answers;
- the relay refuses us (5xx at EHLO, AUTH or MAIL FROM, or an account-level refusal
  after DATA): a configuration or account problem, held and loudly reported;
- the relay asks us to slow down (a 4xx saying so): the whole queue pauses a while;
- this recipient does not exist (a 5xx at RCPT TO about the address itself: 5.1.x,
  or a plain "550 Invalid recipient"): permanent, and the address is suppressed
  (`suppressions.py`), so that no later email to it is attempted;
- this message is refused (any other 5xx at RCPT TO, e.g. a 5.7.x policy refusal that
  says nothing about the mailbox, or a 5xx after DATA for the message itself):
  permanent for that message only;
- any other 4xx for one message: retry that message with backoff;
- anything unexpected: that message fails alone, and is retried with backoff.
"""

import enum
import re

import aiosmtplib
from fastapi_mail.errors import ConnectionErrors

from backend.mail.addresses import UndeliverableAddress


class Fault(enum.Enum):
    RELAY_UNAVAILABLE = "relay unavailable"
    RELAY_REFUSES_US = "relay refuses us"
    RELAY_THROTTLED = "relay throttled"
    RECIPIENT_REFUSED = "recipient refused"
    MESSAGE_REFUSED = "message refused"
    MESSAGE_TRANSIENT = "message transient"
    UNEXPECTED = "unexpected"

    @property
    def is_relays(self) -> bool:
        return self in (Fault.RELAY_UNAVAILABLE, Fault.RELAY_REFUSES_US, Fault.RELAY_THROTTLED)

    @property
    def is_permanent(self) -> bool:
        """Permanent for the message: retrying it would get the same answer."""
        return self in (Fault.RECIPIENT_REFUSED, Fault.MESSAGE_REFUSED)


# Providers word "slow down" in many ways (Gmail 421 4.7.28, SES 454 Throttling, "try
# again later", "too many connections/messages"); the enhanced code 4.7.x is policy.
_SLOW_DOWN = re.compile(r"too many|try (again )?later|throttl|rate limit|slow down", re.I)
# A 5xx after DATA is usually about the message (552 too big, 5.6.x content), but some
# are about the account: SES "554 Sending paused", quota and suspension refusals.
_ACCOUNT_LEVEL = re.compile(r"paus|suspend|quota|account|not authori[sz]ed|daily", re.I)
# A 5xx at RCPT TO condemns the address only when it is about the mailbox. Relays also
# refuse there for reasons of their own or of ours: Postfix's "554 5.7.1 Relay access
# denied" and "550 5.7.1 <x@y>: Recipient address rejected: Access denied" (policy),
# sender verification, blocklists, a full mailbox (usually over by tomorrow). Those words,
# and the enhanced code 5.7.x (security or policy), never suppress an address: a wrong
# suppression loses every later email to someone, a missed one costs one attempt.
_NOT_THE_MAILBOX = re.compile(
    r"relay|denied|not permitted|not allowed|policy|authenticat|blocked|block ?list|"
    r"black ?list|deny ?list|spam|reputation|sender|client host|helo|spf|dkim|dmarc|"
    r"quota|\bfull\b|storage",
    re.I,
)
_ENHANCED_CODE = re.compile(r"\s*5\.(\d{1,3})\.(\d{1,3})\b")
# Under another enhanced code, the words that still say the mailbox is not there
# (Outlook.com: "550 5.5.0 Requested action not taken: mailbox unavailable").
_NO_SUCH_MAILBOX = re.compile(
    r"mailbox unavailable|no such (user|mailbox|recipient|address)|user unknown|"
    r"unknown (user|recipient|mailbox)|does not exist|doesn't exist|invalid recipient|"
    r"recipient not found",
    re.I,
)


def unwrap(exc: BaseException) -> BaseException:
    """fastapi-mail wraps every connection failure in ConnectionErrors; the cause is inside."""
    while isinstance(exc, ConnectionErrors) and (exc.__cause__ or exc.__context__):
        exc = exc.__cause__ or exc.__context__  # type: ignore[assignment]
    return exc


# The local part of an address: what names the person. A relay quotes the recipient in
# its refusal ("550 5.1.1 <ada@example.com>: Recipient address rejected"), and aiosmtplib
# names it again; the domain stays, since it is what an operator groups failures by.
_LOCAL_PART = re.compile(r"""[^\s<>()\[\],;:"'@]+@(?=[^\s<>()\[\],;:"'@])""")
_ADDRESS = re.compile(r"""[^\s<>()\[\],;:"'@]+@[^\s<>()\[\],;:"'@]+""")


def mask_addresses(text: str) -> str:
    """`text` with every address's local part replaced by `***`."""
    return _LOCAL_PART.sub("***@", text)


def describe(exc: BaseException) -> str:
    """One line for logs, `last_error` and the ops page: the real cause, not
    fastapi-mail's wrapper, and no address's local part. The job or the relay it is
    stored with says whose email it was, to those allowed to look."""
    exc = unwrap(exc)
    if isinstance(exc, aiosmtplib.SMTPRecipientsRefused):
        text = "; ".join(f"{refusal.code} {refusal.message}" for refusal in exc.recipients)
    elif isinstance(exc, aiosmtplib.SMTPResponseException):
        text = f"{exc.code} {exc.message}"  # the reply as the relay wrote it
    else:
        text = str(exc)
    return f"{type(exc).__name__}: {mask_addresses(text)}"


def classify(exc: BaseException) -> Fault:
    exc = unwrap(exc)
    if isinstance(exc, aiosmtplib.SMTPRecipientsRefused):
        codes = [refusal.code for refusal in exc.recipients]
        if any(_SLOW_DOWN.search(refusal.message) for refusal in exc.recipients):
            return Fault.RELAY_THROTTLED
        if min(codes) < 500:
            return Fault.MESSAGE_TRANSIENT
        if all(_about_the_mailbox(refusal.message) for refusal in exc.recipients):
            return Fault.RECIPIENT_REFUSED
        return Fault.MESSAGE_REFUSED
    if isinstance(exc, aiosmtplib.SMTPResponseException):
        return _by_reply(exc)
    if isinstance(exc, aiosmtplib.SMTPNotSupported | UndeliverableAddress):
        # The message needs an extension the relay lacks (SMTPUTF8 for a non-ASCII
        # address), or its address has no valid form at all.
        return Fault.MESSAGE_REFUSED
    if isinstance(exc, aiosmtplib.SMTPServerDisconnected | aiosmtplib.SMTPConnectError):
        return Fault.RELAY_UNAVAILABLE
    if isinstance(exc, OSError):  # refused, reset, unreachable, timed out, ssl.SSLError
        return Fault.RELAY_UNAVAILABLE
    return Fault.UNEXPECTED


def _about_the_mailbox(message: str) -> bool:
    """Whether a 5xx at RCPT TO says the mailbox itself is no good (so the next email to it
    would be refused the same way), rather than something about the relay or us."""
    # Without the quoted address: a mailbox called "relay@" says nothing about the relay.
    text = _ADDRESS.sub("<address>", message or "")
    if _NOT_THE_MAILBOX.search(text):
        return False
    enhanced = _ENHANCED_CODE.match(text)
    if enhanced is None:
        return True  # a bare "550 Invalid recipient <x@y>" (MailHog), "550 No such user"
    subject, detail = enhanced.groups()
    if subject == "7":
        return False
    # 5.1.x: the address (bad mailbox, bad domain, bad syntax, moved); 5.2.1: the
    # mailbox is disabled; 5.0.0: unspecified, which Postfix gives unknown users too.
    if subject == "1" or (subject, detail) in (("2", "1"), ("0", "0")):
        return True
    return _NO_SUCH_MAILBOX.search(text) is not None


def _by_reply(exc: aiosmtplib.SMTPResponseException) -> Fault:
    code, text = exc.code, exc.message or ""
    if 400 <= code < 500 and _SLOW_DOWN.search(text):
        return Fault.RELAY_THROTTLED
    if code == 421 or (isinstance(exc, aiosmtplib.SMTPConnectResponseError) and code < 500):
        # 421: "service not available, closing transmission channel", at any stage.
        return Fault.RELAY_UNAVAILABLE
    stage_of_session = isinstance(
        exc,
        aiosmtplib.SMTPConnectResponseError
        | aiosmtplib.SMTPHeloError
        | aiosmtplib.SMTPAuthenticationError,
    )
    if stage_of_session:
        # Nothing can be sent on this session: the relay's problem, not the message's.
        return Fault.RELAY_REFUSES_US if code >= 500 else Fault.RELAY_UNAVAILABLE
    if isinstance(exc, aiosmtplib.SMTPSenderRefused):
        # MAIL FROM names only us: a refusal there is about our sender or our account.
        return Fault.RELAY_REFUSES_US if code >= 500 else Fault.MESSAGE_TRANSIENT
    if code >= 500:
        if isinstance(exc, aiosmtplib.SMTPDataError) and _ACCOUNT_LEVEL.search(text):
            return Fault.RELAY_REFUSES_US
        return Fault.MESSAGE_REFUSED
    if code >= 400:
        return Fault.MESSAGE_TRANSIENT
    return Fault.UNEXPECTED
