"""End-to-end tests of the dev inbox: real SMTP in, MailHog-shaped JSON out."""

from __future__ import annotations

import base64
import os
import quopri
import signal
import smtplib
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email import policy
from email.header import decode_header, make_header
from email.message import EmailMessage
from typing import Any

import httpx
import pytest

from backend.devstack.inbox import DevInbox
from backend.devstack.mailhog_format import HOSTNAME

HELO = "tests.local"
ALT_SUBJECT = "Welcome, Grüße"
PLAIN = "Grüße & <b>not bold</b>\nsecond line\n"
HTML = '<p>Grüße &amp; <b>bold</b> <a href="http://app.test/verify?t=abc">Verify</a></p>\n'
NESTED_HTML = "<p>Nested Grüße, long enough to need quoted-printable soft breaks</p>" * 3 + "\n"


@dataclass(frozen=True)
class Sent:
    alternative: bytes
    plain: bytes
    nested: bytes


@pytest.fixture(scope="module")
def inbox() -> Iterator[DevInbox]:
    with DevInbox(smtp_port=0, http_port=0) as running:
        yield running


@pytest.fixture(scope="module")
def client(inbox: DevInbox) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=inbox.api_url, timeout=10) as http:
        yield http


def send(inbox: DevInbox, raw: bytes, mail_from: str, to: list[str]) -> None:
    with smtplib.SMTP("127.0.0.1", inbox.smtp_port, local_hostname=HELO, timeout=10) as smtp:
        smtp.sendmail(mail_from, to, raw)


def serialize(message: EmailMessage) -> bytes:
    return message.as_bytes(policy=policy.SMTP)


@pytest.fixture
def sent(inbox: DevInbox, client: httpx.Client) -> Sent:
    client.delete("/api/v1/messages").raise_for_status()

    alternative = EmailMessage()
    alternative["From"] = "Alice Sender <alice@example.com>"
    alternative["To"] = "Bob Receiver <bob@example.org>"
    alternative["Subject"] = ALT_SUBJECT
    alternative.set_content(PLAIN, cte="base64")
    alternative.add_alternative(HTML, subtype="html", cte="base64")

    plain = EmailMessage()
    plain["From"] = "noreply@app.test"
    plain["To"] = "carol@example.net"
    plain["Subject"] = "Plain hello"
    plain.set_content("Your code is 123456.\n")

    nested = EmailMessage()
    nested["From"] = "reports@app.test"
    nested["To"] = "dave@example.net, erin@example.net"
    nested["Subject"] = "Nested"
    nested.set_content("nested text\n")
    nested.add_alternative(NESTED_HTML, subtype="html", cte="quoted-printable")
    nested.add_attachment(b"col1,col2\n", maintype="text", subtype="csv", filename="r.csv")

    result = Sent(serialize(alternative), serialize(plain), serialize(nested))
    send(inbox, result.alternative, "bounce@example.com", ["bob@example.org"])
    send(inbox, result.plain, "noreply@app.test", ["carol@example.net"])
    send(inbox, result.nested, "reports@app.test", ["dave@example.net", "erin@example.net"])
    return result


def items(client: httpx.Client, url: str, **params: str | int) -> dict[str, Any]:
    response = client.get(url, params=params)
    response.raise_for_status()
    body: dict[str, Any] = response.json()
    return body


def subject(item: dict[str, Any]) -> str:
    return str(make_header(decode_header(item["Content"]["Headers"]["Subject"][0])))


def subjects(envelope: dict[str, Any]) -> list[str]:
    return [subject(item) for item in envelope["items"]]


def by_subject(client: httpx.Client, wanted: str) -> dict[str, Any]:
    envelope = items(client, "/api/v2/messages")
    found: dict[str, Any] = next(i for i in envelope["items"] if subject(i) == wanted)
    return found


def test_ports_are_real_and_url_matches(inbox: DevInbox) -> None:
    assert inbox.smtp_port > 0
    assert inbox.http_port > 0
    assert inbox.smtp_port != inbox.http_port
    assert inbox.api_url == f"http://127.0.0.1:{inbox.http_port}"


def test_v2_messages_envelope_newest_first(client: httpx.Client, sent: Sent) -> None:
    envelope = items(client, "/api/v2/messages")
    assert set(envelope) == {"total", "count", "start", "items"}
    assert (envelope["total"], envelope["count"], envelope["start"]) == (3, 3, 0)
    assert subjects(envelope) == ["Nested", "Plain hello", ALT_SUBJECT]


def test_single_part_message_shape(client: httpx.Client, sent: Sent) -> None:
    msg = by_subject(client, "Plain hello")
    assert set(msg) == {"ID", "From", "To", "Content", "Created", "MIME", "Raw"}
    assert msg["ID"].endswith("@" + HOSTNAME)
    assert len(msg["ID"].split("@")[0]) == 44  # base64url of 32 random bytes, as MailHog does
    assert msg["From"] == {"Relays": None, "Mailbox": "noreply", "Domain": "app.test", "Params": ""}
    assert msg["To"] == [
        {"Relays": None, "Mailbox": "carol", "Domain": "example.net", "Params": ""}
    ]
    raw = sent.plain.decode()
    content = msg["Content"]
    assert set(content) == {"Headers", "Body", "Size", "MIME"}
    assert content["Body"] == "Your code is 123456.\r\n"
    assert content["Size"] == len(sent.plain)
    assert content["MIME"] is None
    headers = content["Headers"]
    assert headers["From"] == ["noreply@app.test"]
    assert headers["To"] == ["carol@example.net"]
    assert headers["Content-Type"] == ['text/plain; charset="utf-8"']
    assert headers["Content-Transfer-Encoding"] == ["7bit"]
    assert headers["Message-ID"] == [msg["ID"]]
    assert headers["Return-Path"] == ["<noreply@app.test>"]
    assert headers["Received"][0].startswith(f"from {HELO} by {HOSTNAME} (MailHog)")
    assert msg["MIME"] is None
    assert msg["Raw"] == {
        "From": "noreply@app.test",
        "To": ["carol@example.net"],
        "Data": raw,
        "Helo": HELO,
    }
    created = datetime.fromisoformat(msg["Created"])
    assert created.tzinfo is not None
    assert abs(datetime.now(UTC) - created) < timedelta(minutes=1)


def test_multipart_alternative_parts(client: httpx.Client, sent: Sent) -> None:
    msg = by_subject(client, ALT_SUBJECT)
    assert msg["From"]["Mailbox"] == "bounce"
    assert msg["Content"]["Headers"]["Subject"] == ["Welcome, =?utf-8?q?Gr=C3=BC=C3=9Fe?="]
    assert msg["Content"]["Headers"]["Content-Type"][0].startswith("multipart/alternative;")
    assert msg["Content"]["MIME"] is None  # MailHog puts the tree on Message.MIME only
    parts = msg["MIME"]["Parts"]
    assert len(parts) == 2
    plain, html = parts
    assert plain["Headers"]["Content-Type"] == ['text/plain; charset="utf-8"']
    assert plain["Headers"]["Content-Transfer-Encoding"] == ["base64"]
    assert base64.b64decode(plain["Body"]).decode() == PLAIN
    assert plain["MIME"] is None
    assert html["Headers"]["Content-Type"] == ['text/html; charset="utf-8"']
    assert base64.b64decode(html["Body"]).decode() == HTML
    # A part's Size covers its own header block plus body, as in MailHog.
    assert html["Size"] > len(html["Body"]) + len("Content-Transfer-Encoding: base64")


def test_nested_multipart(client: httpx.Client, sent: Sent) -> None:
    msg = by_subject(client, "Nested")
    assert [p["Mailbox"] for p in msg["To"]] == ["dave", "erin"]
    outer = msg["MIME"]["Parts"]
    assert len(outer) == 2
    alternative, attachment = outer
    assert alternative["Headers"]["Content-Type"][0].startswith("multipart/alternative;")
    inner = alternative["MIME"]["Parts"]
    assert [p["Headers"]["Content-Type"][0].split(";")[0] for p in inner] == [
        "text/plain",
        "text/html",
    ]
    assert all(p["MIME"] is None for p in inner)
    assert inner[1]["Headers"]["Content-Transfer-Encoding"] == ["quoted-printable"]
    # MailHog trims the CRLF before the next delimiter, so the final newline is gone.
    qp_body = quopri.decodestring(inner[1]["Body"]).decode()
    assert qp_body.replace("\r\n", "\n") == NESTED_HTML.rstrip("\n")
    assert attachment["Headers"]["Content-Disposition"] == ['attachment; filename="r.csv"']
    assert attachment["MIME"] is None


@pytest.mark.parametrize(
    ("kind", "query", "expected"),
    [
        ("from", "BOUNCE@example", [ALT_SUBJECT]),  # envelope
        ("from", "alice sender", [ALT_SUBJECT]),  # header only
        ("from", "app.test", ["Nested", "Plain hello"]),
        ("to", "erin@", ["Nested"]),
        ("to", "Bob Receiver", [ALT_SUBJECT]),
        ("containing", "code is 123456", ["Plain hello"]),
        ("containing", "r.csv", ["Nested"]),
        # Like MailHog, base64-encoded bodies are not searchable.
        ("containing", "not bold", []),
    ],
)
def test_search(
    client: httpx.Client, sent: Sent, kind: str, query: str, expected: list[str]
) -> None:
    envelope = items(client, "/api/v2/search", kind=kind, query=query)
    assert subjects(envelope) == expected
    assert envelope["total"] == envelope["count"] == len(expected)


def test_search_pagination_and_validation(client: httpx.Client, sent: Sent) -> None:
    envelope = items(client, "/api/v2/search", kind="from", query="app.test", start=1, limit=1)
    assert (envelope["total"], envelope["count"], envelope["start"]) == (2, 1, 1)
    assert subjects(envelope) == ["Plain hello"]
    assert client.get("/api/v2/search", params={"kind": "subject", "query": "x"}).status_code == 400
    assert client.get("/api/v2/search", params={"kind": "to", "query": ""}).status_code == 400


def test_pagination(client: httpx.Client, sent: Sent) -> None:
    page = items(client, "/api/v2/messages", start=1, limit=1)
    assert (page["total"], page["count"], page["start"]) == (3, 1, 1)
    assert subjects(page) == ["Plain hello"]
    past_end = items(client, "/api/v2/messages", start=5)
    assert (past_end["total"], past_end["count"], past_end["items"]) == (3, 0, [])
    # Invalid values fall back to MailHog's defaults instead of failing.
    fallback = items(client, "/api/v2/messages", start="x", limit="-3")
    assert (fallback["start"], fallback["count"]) == (0, 3)


def test_v1_list_get_and_download(client: httpx.Client, sent: Sent) -> None:
    v2 = items(client, "/api/v2/messages")["items"]
    v1 = client.get("/api/v1/messages").json()
    assert v1 == v2
    nested = v1[0]
    one = client.get(f"/api/v1/messages/{nested['ID']}")
    assert one.status_code == 200
    assert one.json() == nested
    assert client.get("/api/v1/messages/nope@mailhog.example").status_code == 404
    download = client.get(f"/api/v1/messages/{nested['ID']}/download")
    assert download.status_code == 200
    assert download.headers["content-type"] == "message/rfc822"
    assert download.headers["content-disposition"] == f'attachment; filename="{nested["ID"]}.eml"'
    assert download.content == sent.nested


def test_delete_one_and_all(client: httpx.Client, sent: Sent) -> None:
    first = items(client, "/api/v2/messages")["items"][0]
    assert client.delete(f"/api/v1/messages/{first['ID']}").status_code == 200
    assert client.get(f"/api/v1/messages/{first['ID']}").status_code == 404
    assert client.delete(f"/api/v1/messages/{first['ID']}").status_code == 404
    assert subjects(items(client, "/api/v2/messages")) == [
        "Plain hello",
        ALT_SUBJECT,
    ]
    assert client.delete("/api/v1/messages").status_code == 200
    assert items(client, "/api/v2/messages") == {"total": 0, "count": 0, "start": 0, "items": []}


def test_ui_page_has_sandboxed_iframe(client: httpx.Client) -> None:
    page = client.get("/")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    html = page.text
    assert 'sandbox="allow-popups allow-popups-to-escape-sandbox"' in html
    assert "<iframe" in html
    assert "allow-scripts" not in html.split("<iframe", 1)[1].split(">", 1)[0]
    assert "Delete all" in html
    assert 'src="http' not in html  # no external CDN
    # The CSS and JS are the inbox's own files (its CSP allows no inline ones).
    script = client.get("/static/inbox.js")
    assert script.status_code == 200
    assert "setInterval(refresh" in script.text
    assert client.get("/static/inbox.css").status_code == 200


def test_message_html_is_served_with_links_opening_a_new_tab(
    client: httpx.Client, sent: Sent
) -> None:
    alternative = by_subject(client, ALT_SUBJECT)
    body = client.get(f"/api/dev/messages/{alternative['ID']}/html")
    assert body.status_code == 200
    assert body.headers["content-type"].startswith("text/html")
    assert body.text == '<base target="_blank">' + HTML
    plain = by_subject(client, "Plain hello")
    assert client.get(f"/api/dev/messages/{plain['ID']}/html").status_code == 404
    assert client.get("/api/dev/messages/nope/html").status_code == 404


def test_parts_endpoint_decodes_transfer_encodings(client: httpx.Client, sent: Sent) -> None:
    alternative = by_subject(client, ALT_SUBJECT)
    parts = client.get(f"/api/dev/messages/{alternative['ID']}/parts").json()
    assert parts == {"html": HTML, "text": PLAIN}

    nested = by_subject(client, "Nested")
    parts = client.get(f"/api/dev/messages/{nested['ID']}/parts").json()
    assert parts == {"html": NESTED_HTML, "text": "nested text\n"}

    plain = by_subject(client, "Plain hello")
    parts = client.get(f"/api/dev/messages/{plain['ID']}/parts").json()
    assert parts == {"html": None, "text": "Your code is 123456.\n"}

    assert client.get("/api/dev/messages/nope/parts").status_code == 404


def test_parts_endpoint_survives_unknown_charset(inbox: DevInbox, client: httpx.Client) -> None:
    client.delete("/api/v1/messages").raise_for_status()
    raw = (
        b"Subject: odd\r\nContent-Type: text/plain; charset=x-no-such-charset\r\n"
        b"Content-Transfer-Encoding: base64\r\n\r\n"
        + base64.encodebytes("Grüße\n".encode()).replace(b"\n", b"\r\n")
    )
    send(inbox, raw, "a@app.test", ["b@app.test"])
    (msg,) = items(client, "/api/v2/messages")["items"]
    parts = client.get(f"/api/dev/messages/{msg['ID']}/parts").json()
    assert parts == {"html": None, "text": "Grüße\n"}


def test_accepts_ten_megabyte_message(inbox: DevInbox, client: httpx.Client) -> None:
    client.delete("/api/v1/messages").raise_for_status()
    payload = base64.encodebytes(os.urandom(7_600_000)).replace(b"\n", b"\r\n")
    raw = (
        b"Subject: big\r\nContent-Type: application/octet-stream\r\n"
        b"Content-Transfer-Encoding: base64\r\n\r\n" + payload
    )
    assert len(raw) > 10_000_000
    send(inbox, raw, "a@app.test", ["b@app.test"])
    envelope = items(client, "/api/v2/messages", limit=1)
    assert envelope["total"] == 1
    assert envelope["items"][0]["Content"]["Size"] == len(raw)


def test_restart_on_same_ports() -> None:
    with DevInbox(smtp_port=0, http_port=0) as first:
        ports = (first.smtp_port, first.http_port)
        send(first, b"Subject: hi\r\n\r\nhi\r\n", "a@app.test", ["b@app.test"])
        assert httpx.get(f"{first.api_url}/api/v2/messages").json()["total"] == 1
    # Connections just closed leave TIME_WAIT sockets behind; SO_REUSEADDR makes this work.
    with DevInbox(smtp_port=ports[0], http_port=ports[1]) as second:
        assert (second.smtp_port, second.http_port) == ports
        assert httpx.get(f"{second.api_url}/api/v2/messages").json()["total"] == 0


def test_cli_runs_until_ctrl_c() -> None:
    command = [sys.executable, "-u", "-m", "backend.devstack.inbox", "--smtp-port", "0"]
    with subprocess.Popen([*command, "--http-port", "0"], stdout=subprocess.PIPE, text=True) as cli:
        try:
            assert cli.stdout is not None
            smtp_line, http_line = cli.stdout.readline(), cli.stdout.readline()
            assert smtp_line.startswith("SMTP server:")
            smtp_port = int(smtp_line.rsplit(":", 1)[1])
            api_url = http_line.split()[-1].rstrip("/")
            with smtplib.SMTP("127.0.0.1", smtp_port, local_hostname=HELO, timeout=10) as smtp:
                smtp.sendmail("a@app.test", ["b@app.test"], b"Subject: cli\r\n\r\nhi\r\n")
            assert httpx.get(f"{api_url}/api/v2/messages").json()["total"] == 1
            cli.send_signal(signal.SIGINT)
            assert cli.wait(timeout=10) == 0
        finally:
            if cli.poll() is None:
                cli.kill()
