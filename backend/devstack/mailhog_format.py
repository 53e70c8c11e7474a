"""MailHog v1.0.1's JSON shapes (``github.com/mailhog/data``), built from raw SMTP messages.

Kept apart from the servers in ``inbox.py``: this is the format, that is the plumbing.
"""

from __future__ import annotations

import base64
import email
import os
import re
from datetime import datetime
from email import policy
from email.message import EmailMessage
from email.message import Message as CompatMessage
from email.utils import format_datetime
from typing import TypedDict

HOSTNAME = "mailhog.example"
# Base64 inflates attachments by a third, so leave room well above a ~10 MB message.

_BLANK_LINE = re.compile(r"\r?\n\r?\n")
_LINE_BREAK = re.compile(r"\r?\n")


class PathJSON(TypedDict):
    Relays: list[str] | None
    Mailbox: str
    Domain: str
    Params: str


class MIMEBodyJSON(TypedDict):
    Parts: list[ContentJSON]


class ContentJSON(TypedDict):
    Headers: dict[str, list[str]]
    Body: str
    Size: int
    MIME: MIMEBodyJSON | None


class SMTPMessageJSON(TypedDict):
    From: str
    To: list[str]
    Data: str
    Helo: str


class MessageJSON(TypedDict):
    ID: str
    From: PathJSON
    To: list[PathJSON]
    Content: ContentJSON
    Created: str
    MIME: MIMEBodyJSON | None
    Raw: SMTPMessageJSON


def parse_path(path: str) -> PathJSON:
    relays = None
    address = path
    # Only a leading "@" marks a source route; an IPv6 literal domain also contains ":".
    if path.startswith("@") and ":" in path:
        route, address = path.split(":", 1)
        relays = route.split(",")
    mailbox, _, domain = address.partition("@")
    return {"Relays": relays, "Mailbox": mailbox, "Domain": domain, "Params": ""}


def header_values(headers: dict[str, list[str]], name: str) -> list[str]:
    wanted = name.lower()
    return [value for key, values in headers.items() if key.lower() == wanted for value in values]


def _add_header(headers: dict[str, list[str]], name: str, value: str) -> None:
    existing = next((key for key in headers if key.lower() == name.lower()), name)
    headers.setdefault(existing, []).append(value)


def parse_content(data: str) -> ContentJSON:
    """Split headers from body the way MailHog does, recursing into multipart bodies."""
    pieces = _BLANK_LINE.split(data, maxsplit=1)
    head, body = (pieces[0], pieces[1]) if len(pieces) == 2 else ("", data)
    headers: dict[str, list[str]] = {}
    last: str | None = None
    for line in _LINE_BREAK.split(head):
        if last is not None and line[:1] in (" ", "\t"):
            # Like MailHog, unfold by concatenating the continuation line onto the value.
            headers[last][-1] += line
        elif ":" in line:
            name, value = line.split(":", 1)
            headers.setdefault(name, []).append(value.lstrip(" \t"))
            last = name
    content: ContentJSON = {
        "Headers": headers,
        "Body": body,
        "Size": len(data.encode()),
        "MIME": None,
    }
    content_type = next(iter(header_values(headers, "Content-Type")), "")
    if content_type.lower().startswith("multipart/"):
        probe = CompatMessage()
        probe["Content-Type"] = content_type
        boundary = probe.get_boundary()
        # Drop the preamble before the first delimiter and the epilogue after the last one.
        chunks = body.split("--" + boundary)[1:-1] if boundary else []
        content["MIME"] = {"Parts": [parse_content(c.strip("\r\n")) for c in chunks if c]}
    return content


def build_message(raw: bytes, mail_from: str, rcpt_tos: list[str], helo: str) -> MessageJSON:
    message_id = base64.urlsafe_b64encode(os.urandom(32)).decode() + "@" + HOSTNAME
    data = raw.decode("utf-8", errors="replace")
    content = parse_content(data)
    # MailHog keeps the top-level MIME tree on the Message and leaves Content.MIME null.
    mime, content["MIME"] = content["MIME"], None
    now = datetime.now().astimezone()
    headers = content["Headers"]
    # Headers MailHog adds on receipt, which some clients look for.
    if not header_values(headers, "Message-ID"):
        headers["Message-ID"] = [message_id]
    _add_header(
        headers,
        "Received",
        f"from {helo} by {HOSTNAME} (MailHog)\r\n          id {message_id}; {format_datetime(now)}",
    )
    _add_header(headers, "Return-Path", f"<{mail_from}>")
    return {
        "ID": message_id,
        "From": parse_path(mail_from),
        "To": [parse_path(rcpt) for rcpt in rcpt_tos],
        "Content": content,
        "Created": now.isoformat(),
        "MIME": mime,
        "Raw": {"From": mail_from, "To": list(rcpt_tos), "Data": data, "Helo": helo},
    }


def matches(message: MessageJSON, kind: str, query: str) -> bool:
    """MailHog search semantics: ``kind`` is "from", "to" or "containing"."""
    needle = query.lower()
    if kind == "containing":
        return needle in message["Raw"]["Data"].lower()
    headers = message["Content"]["Headers"]
    if kind == "from":
        paths, header = [message["From"]], "From"
    else:
        paths, header = message["To"], "To"
    candidates = [f"{p['Mailbox']}@{p['Domain']}" for p in paths]
    candidates += header_values(headers, header)
    return any(needle in candidate.lower() for candidate in candidates)


def decoded_bodies(raw: bytes) -> dict[str, str | None]:
    parsed = email.message_from_bytes(raw, policy=policy.default)
    return {"html": _body_text(parsed, "html"), "text": _body_text(parsed, "plain")}


def _body_text(message: EmailMessage, subtype: str) -> str | None:
    part = message.get_body(preferencelist=(subtype,))
    if part is None:
        return None
    try:
        text = str(part.get_content())
    except LookupError:
        # An unknown charset should degrade the preview, not break it.
        payload = part.get_payload(decode=True)
        text = payload.decode("utf-8", errors="replace") if isinstance(payload, bytes) else ""
    # SMTP forces CRLF on 7bit/8bit/QP bodies; callers want the text as the sender wrote it.
    return text.replace("\r\n", "\n")
