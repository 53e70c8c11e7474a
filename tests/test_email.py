"""The welcome email as delivered: read back through the MailHog API, MIME decoded."""

from pathlib import Path

import httpx
from sqlalchemy.ext.asyncio import AsyncEngine

from backend.context import TEMPLATES_DIR
from backend.mail.render import EmailRenderer
from tests.support.helpers import register_via_api, rows, verify_link
from tests.support.mailhog import MailHog


async def test_one_welcome_email_with_both_parts_greeting_the_user(
    client: httpx.AsyncClient, mailhog: MailHog
) -> None:
    await register_via_api(client, "ada_l", email="ada.l@example.com")

    [mail] = await mailhog.wait_for(1)

    assert mail.to == ["ada.l@example.com"]
    assert mail.message.get_content_type() == "multipart/alternative"
    assert [p.get_content_type() for p in mail.message.iter_parts()] == ["text/plain", "text/html"]
    assert mail.subject == "Welcome, ada_l! Please confirm your email"
    assert "welcome@example.com" in str(mail.message["From"])
    text, html = mail.part("text/plain"), mail.part("text/html")
    assert "Hi ada_l," in text and "Hi ada_l," in html
    assert verify_link(text) == verify_link(html)
    # The plain-text part is not HTML-escaped (fastapi-mail's own environment would).
    assert "signing up & welcome" in text and "&amp;" not in text
    assert "signing up &amp; welcome" in html


async def test_exactly_one_message_id_and_it_is_the_one_recorded(
    client: httpx.AsyncClient, mailhog: MailHog, engine: AsyncEngine
) -> None:
    user = await register_via_api(client, "grace")

    [mail] = await mailhog.wait_for(1)

    assert len(mail.message_ids) == 1
    [job] = await rows(engine, "SELECT payload FROM jobs WHERE kind = 'email.welcome'")
    assert mail.message_ids[0] == job["payload"]["message_id"]
    [sent] = await rows(
        engine, "SELECT user_id, details FROM audit_log WHERE action = 'email.sent'"
    )
    assert str(sent["user_id"]) == user["id"]
    assert sent["details"]["message_id"] == mail.message_ids[0]


async def test_each_registration_gets_its_own_email(
    client: httpx.AsyncClient, mailhog: MailHog
) -> None:
    for name in ("one", "two", "three"):
        await register_via_api(client, name)
    mails = await mailhog.wait_for(3)
    assert sorted(m.to[0] for m in mails) == [
        "one@example.com",
        "three@example.com",
        "two@example.com",
    ]
    assert len({m.message_ids[0] for m in mails}) == 3
    assert [m.to for m in await mailhog.to("two@example.com")] == [["two@example.com"]]


def test_text_part_keeps_characters_that_html_escapes(tmp_path: Path) -> None:
    rendered = EmailRenderer(TEMPLATES_DIR).render(
        "welcome",
        username="Tom & <Jerry>",
        verified=False,
        verify_url="http://x/verify?token=a&b",
        resend_url="http://x/verify/resend",
        link_lifetime="48 hours",
        base_url="http://x",
    )
    assert "Hi Tom & <Jerry>," in rendered.text
    assert "http://x/verify?token=a&b" in rendered.text
    assert "Hi Tom &amp; &lt;Jerry&gt;," in rendered.html
    assert 'href="http://x/verify?token=a&amp;b"' in rendered.html
    assert rendered.subject == "Welcome, Tom & <Jerry>! Please confirm your email"


async def test_an_internationalised_domain_is_delivered_in_ascii(
    client: httpx.AsyncClient, mailhog: MailHog, engine: AsyncEngine
) -> None:
    user = await register_via_api(client, "bookworm", email="Bookworm@Bücher.example")

    [mail] = await mailhog.wait_for(1)

    assert user["email"] == "Bookworm@bücher.example"  # stored as the person typed it
    assert mail.to == ["Bookworm@xn--bcher-kva.example"]
    assert "xn--bcher-kva.example" in str(mail.message["To"])
    assert len(await rows(engine, "SELECT id FROM audit_log WHERE action = 'email.sent'")) == 1
