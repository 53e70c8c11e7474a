"""Jim, MailHog's chaos monkey, on the mail catcher: his API and his dice, as MailHog's.

Real SMTP clients (aiosmtplib) against the built-in inbox, or against the outside catcher of
TEST_MAILHOG_URL: these pass on a real MailHog too (our own `Faults` rules are tested in
test_jim_faults.py). Every test that turns Jim on turns him off again (the `jim` fixture),
and every wait is bounded.
"""

from __future__ import annotations

import time

import httpx
import pytest
from aiosmtplib import SMTPRecipientRefused, SMTPSenderRefused, SMTPServerDisconnected

from backend.devstack.inbox import DevInbox
from tests.support.jim import (
    CALM,
    MAILHOG_DEFAULTS,
    MAILHOG_FIELDS,
    PATH,
    REFUSED,
    JimAPI,
    address,
    plain_auth,
    stored,
)
from tests.support.mailhog import MailHog


async def test_api_status_codes(jim: JimAPI) -> None:
    http = jim.http
    assert (await http.get(PATH)).status_code == 404
    assert (await http.put(PATH, json=CALM)).status_code == 404
    assert (await http.delete(PATH)).status_code == 404

    assert (await http.post(PATH)).status_code == 201
    assert set(MAILHOG_FIELDS) <= set(await jim.settings())
    assert (await http.post(PATH)).status_code == 400  # already on

    changed = {**CALM, "RejectSenderChance": 0.5, "LinkSpeedMin": 2048}
    assert (await http.put(PATH, json=changed)).status_code == 200
    assert {k: v for k, v in (await jim.settings()).items() if k in MAILHOG_FIELDS} == changed

    assert (await http.delete(PATH)).status_code == 200
    assert (await http.get(PATH)).status_code == 404
    assert (await http.delete(PATH)).status_code == 404


async def test_fields_left_out_of_a_body_are_zero_as_in_mailhog(jim: JimAPI) -> None:
    response = await jim.http.post(PATH, json={"DisconnectChance": 0.25, "AcceptChance": 1})
    assert response.status_code == 201
    settings = await jim.settings()
    assert settings["DisconnectChance"] == 0.25
    assert settings["AcceptChance"] == 1
    assert all(settings[name] == 0 for name in MAILHOG_FIELDS[2:])


async def test_post_without_body_brings_back_the_last_settings_sent(jim: JimAPI) -> None:
    custom = {**CALM, "RejectRecipientChance": 0.125}
    await jim.on(**custom)
    await jim.off()
    assert (await jim.http.post(PATH)).status_code == 201
    assert {k: v for k, v in (await jim.settings()).items() if k in MAILHOG_FIELDS} == custom


async def test_post_without_body_on_a_fresh_inbox_uses_mailhog_defaults() -> None:
    with DevInbox(smtp_port=0, http_port=0) as inbox:
        async with httpx.AsyncClient(base_url=inbox.api_url, timeout=10) as http:
            assert (await http.post(PATH)).status_code == 201
            try:
                assert (await http.get(PATH)).json() == {**MAILHOG_DEFAULTS, "Faults": []}
            finally:
                assert (await http.delete(PATH)).status_code == 200


async def test_reject_sender_chance_one_gives_550_and_off_restores_delivery(
    jim: JimAPI, mailhog: MailHog
) -> None:
    await jim.on(RejectSenderChance=1)
    smtp = await jim.connect()
    try:
        await smtp.ehlo()
        with pytest.raises(SMTPSenderRefused) as refused:
            await smtp.mail("ada@app.test")
    finally:
        smtp.close()
    assert (refused.value.code, refused.value.message) == (550, "Invalid sender ada@app.test")

    await jim.off()
    to = address("after-jim")
    await jim.send([to])
    assert await stored(mailhog, to) == [to]


async def test_reject_recipient_chance_one_gives_550(jim: JimAPI) -> None:
    await jim.on(RejectRecipientChance=1)
    smtp = await jim.connect()
    try:
        await smtp.ehlo()
        await smtp.mail("ada@app.test")
        with pytest.raises(SMTPRecipientRefused) as refused:
            await smtp.rcpt("bob@example.com")
    finally:
        smtp.close()
    assert (refused.value.code, refused.value.message) == (550, "Invalid recipient bob@example.com")


async def test_reject_auth_chance_one_gives_mailhogs_500(jim: JimAPI) -> None:
    smtp = await jim.connect()
    try:
        await smtp.ehlo()
        accepted = await smtp.execute_command(b"AUTH", b"PLAIN", plain_auth())
    finally:
        smtp.close()
    assert accepted.code == 235  # any credentials, as MailHog

    await jim.on(RejectAuthChance=1)
    smtp = await jim.connect()
    try:
        await smtp.ehlo()
        rejected = await smtp.execute_command(b"AUTH", b"PLAIN", plain_auth())
    finally:
        smtp.close()
    assert (rejected.code, rejected.message) == (500, "Unrecognised command")


async def test_accept_chance_zero_refuses_every_connection(jim: JimAPI) -> None:
    await jim.on(AcceptChance=0)
    for _ in range(3):
        with pytest.raises(REFUSED):
            await jim.connect()
    await jim.off()
    (await jim.connect()).close()


async def test_disconnect_chance_one_drops_after_the_reply(jim: JimAPI) -> None:
    await jim.on(DisconnectChance=1)
    smtp = await jim.connect()
    try:
        assert (await smtp.ehlo()).code == 250  # the reply comes, then the line drops
        with pytest.raises(SMTPServerDisconnected):
            await smtp.noop()
    finally:
        smtp.close()


async def test_link_speed_throttles_the_connection(jim: JimAPI) -> None:
    # 20 is 160 bytes a second, in MailHog and here (MailHog multiplies the setting by 8).
    await jim.on(LinkSpeedAffect=1, LinkSpeedMin=20, LinkSpeedMax=20)
    started = time.monotonic()
    smtp = await jim.connect()
    try:
        await smtp.ehlo()  # greeting + EHLO and its reply: well over 48 bytes at 160 B/s
    finally:
        smtp.close()
    assert time.monotonic() - started >= 0.3
