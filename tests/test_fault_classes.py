"""Which SMTP refusals suppress an address (`faults.Fault.RECIPIENT_REFUSED`) and which
never do: a table of real relays' answers through `classify()`, a pure function."""

import aiosmtplib
import pytest

from backend.mail.faults import Fault, classify, describe


def at_rcpt(code: int, message: str) -> aiosmtplib.SMTPRecipientsRefused:
    return aiosmtplib.SMTPRecipientsRefused(
        [aiosmtplib.SMTPRecipientRefused(code, message, "ada@example.com")]
    )


@pytest.mark.parametrize(
    ("code", "message"),
    [
        (550, "Invalid recipient <ada@example.com>"),  # MailHog's Jim, and ours
        (550, "5.1.1 <ada@example.com>: Recipient address rejected: User unknown"),  # Postfix
        (550, "5.1.1 The email account that you tried to reach does not exist."),  # Gmail
        (550, "5.1.10 RESOLVER.ADR.RecipientNotFound; Recipient not found"),  # Microsoft 365
        (550, "5.5.0 Requested action not taken: mailbox unavailable"),  # Outlook.com
        (553, "5.1.3 Bad destination mailbox address syntax"),
        (550, "5.2.1 The email account that you tried to reach is disabled."),
        (554, "delivery error: dd This user doesn't have a yahoo.com account"),  # Yahoo
        (550, "No such user here"),
        # The recipient's name says nothing: a mailbox called relay@ is still unknown.
        (550, "5.1.1 <relay@example.com>: Recipient address rejected: User unknown"),
    ],
)
def test_a_5xx_about_the_mailbox_suppresses_it(code: int, message: str) -> None:
    assert classify(at_rcpt(code, message)) is Fault.RECIPIENT_REFUSED
    assert Fault.RECIPIENT_REFUSED.is_permanent and not Fault.RECIPIENT_REFUSED.is_relays


@pytest.mark.parametrize(
    ("code", "message"),
    [
        (554, "5.7.1 <ada@example.com>: Relay access denied"),  # Postfix, not our relay
        (550, "5.7.1 <ada@example.com>: Recipient address rejected: Access denied"),
        (550, "5.7.1 Service unavailable; client host [192.0.2.1] blocked using zen"),
        (550, "5.7.26 Unauthenticated email from example.com is not accepted (DMARC)"),
        (550, "Relaying not permitted"),
        (554, "Rejected by policy"),
        (550, "Authentication required"),
        (550, "Message rejected as spam"),
        (550, "5.1.1 Sender address rejected: not owned by user"),
        (552, "5.2.2 Mailbox full"),
        (552, "Requested mail action aborted: exceeded storage allocation"),
        (550, "5.4.1 Recipient address rejected: Access denied. AS(201806281)"),
        (550, "5.3.0 Other mail system problem"),
    ],
)
def test_a_refusal_of_the_relay_or_of_us_stays_the_message_s(code: int, message: str) -> None:
    assert classify(at_rcpt(code, message)) is Fault.MESSAGE_REFUSED


@pytest.mark.parametrize(
    ("exc", "fault"),
    [
        (at_rcpt(450, "4.2.1 Mailbox busy"), Fault.MESSAGE_TRANSIENT),
        (at_rcpt(451, "4.1.1 Recipient address rejected: unverified"), Fault.MESSAGE_TRANSIENT),
        (at_rcpt(451, "4.7.1 Too many messages, slow down"), Fault.RELAY_THROTTLED),
        (
            aiosmtplib.SMTPSenderRefused(550, "Invalid sender <a@b.c>", "a@b.c"),
            Fault.RELAY_REFUSES_US,
        ),
        (
            aiosmtplib.SMTPSenderRefused(451, "4.3.0 Temporary failure", "a@"),
            Fault.MESSAGE_TRANSIENT,
        ),
        (aiosmtplib.SMTPDataError(552, "5.3.4 Message size exceeds limit"), Fault.MESSAGE_REFUSED),
    ],
    ids=["450", "451-unverified", "451-slow-down", "sender-550", "sender-451", "data-552"],
)
def test_no_4xx_and_no_sender_refusal_suppresses(exc: BaseException, fault: Fault) -> None:
    assert classify(exc) is fault


def test_the_reason_kept_names_no_local_part() -> None:
    refusal = at_rcpt(550, "5.1.1 <ada.lovelace@example.com>: Recipient address rejected")
    assert describe(refusal) == (
        "SMTPRecipientsRefused: 550 5.1.1 <***@example.com>: Recipient address rejected"
    )
