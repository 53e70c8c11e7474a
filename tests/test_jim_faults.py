"""Our own extension of Jim: `Faults`, rules that fail on cue at each SMTP stage.

Real SMTP clients (aiosmtplib) against the inbox, checking the exact replies. Each test
skips on a catcher that doesn't keep `Faults` (a real MailHog, through TEST_MAILHOG_URL).
Every test that turns Jim on turns him off again (the `jim` fixture).
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from aiosmtplib import SMTPConnectResponseError, SMTPDataError, SMTPServerDisconnected

from tests.support.jim import (
    CALM,
    HELO,
    MAILHOG_FIELDS,
    PATH,
    REFUSED,
    JimAPI,
    address,
    message,
    plain_auth,
    stored,
)
from tests.support.mailhog import MailHog


async def test_faults_alone_start_from_no_random_faults(jim: JimAPI) -> None:
    await jim.faults({"Stage": "mail", "Reply": "451 4.3.0 later", "Times": 2})
    settings = await jim.settings()
    assert {k: v for k, v in settings.items() if k in MAILHOG_FIELDS} == CALM
    assert settings["Faults"] == [
        {
            "Stage": "mail",
            "Action": "reply",
            "Reply": "451 4.3.0 later",
            "Match": None,
            "Chance": 1,
            "Times": 2,
            "Seconds": None,
            "Remaining": 2,
            "Fired": 0,
        }
    ]


@pytest.mark.parametrize("reply", ["421 4.3.2 busy", "554 no service"])
async def test_connect_reply_replaces_the_greeting(jim: JimAPI, reply: str) -> None:
    await jim.faults({"Stage": "connect", "Reply": reply})
    with pytest.raises(SMTPConnectResponseError) as refused:
        await jim.connect()
    code, text = reply.split(" ", 1)
    assert (refused.value.code, refused.value.message) == (int(code), text)


async def test_connect_disconnect_and_hang(jim: JimAPI) -> None:
    await jim.faults({"Stage": "connect", "Action": "disconnect", "Times": 1})
    with pytest.raises(REFUSED):
        await jim.connect()
    (await jim.connect()).close()  # spent

    await jim.off()
    await jim.faults({"Stage": "connect", "Action": "hang", "Seconds": 0.3})
    started = time.monotonic()
    (await jim.connect()).close()
    assert time.monotonic() - started >= 0.3


async def test_helo_and_auth_rules(jim: JimAPI) -> None:
    await jim.faults(
        {"Stage": "helo", "Reply": "421 4.7.0 Try again later", "Times": 1},
        {"Stage": "auth", "Reply": "535 5.7.8 Authentication credentials invalid"},
    )
    smtp = await jim.connect()
    try:
        assert (await smtp.execute_command(b"EHLO", HELO.encode())).code == 421
    finally:
        smtp.close()
    smtp = await jim.connect()
    try:
        assert (await smtp.execute_command(b"EHLO", HELO.encode())).code == 250
        auth = await smtp.execute_command(b"AUTH", b"PLAIN", plain_auth())
    finally:
        smtp.close()
    assert (auth.code, auth.message) == (535, "5.7.8 Authentication credentials invalid")


async def test_mail_rule_with_match_and_times(jim: JimAPI) -> None:
    await jim.faults({"Stage": "mail", "Reply": "451 4.3.0 later", "Match": "BOB@", "Times": 2})
    smtp = await jim.connect()
    try:
        await smtp.ehlo()
        codes = []
        for sender in ["ada@app.test", "bob@app.test", "bob@app.test", "bob@app.test"]:
            codes.append((await smtp.execute_command(b"MAIL", f"FROM:<{sender}>".encode())).code)
            await smtp.rset()
    finally:
        smtp.close()
    assert codes == [250, 451, 451, 250]
    rule = await jim.rule()
    assert (rule["Remaining"], rule["Fired"]) == (0, 2)


async def test_rcpt_rule_refuses_one_recipient(jim: JimAPI, mailhog: MailHog) -> None:
    ada, bob = address("ada"), address("bob")
    await jim.faults({"Stage": "rcpt", "Reply": "550 5.1.1 no such user", "Match": bob})
    refused, _ = await jim.send([ada, bob])
    assert {to: (r.code, r.message) for to, r in refused.items()} == {
        bob: (550, "5.1.1 no such user")
    }
    assert await stored(mailhog, ada) == [ada]


async def test_data_reply_means_the_message_is_not_stored(jim: JimAPI, mailhog: MailHog) -> None:
    kept, lost = address("kept"), address("lost")
    await jim.faults({"Stage": "data", "Reply": "452 4.3.1 Insufficient storage", "Match": lost})
    with pytest.raises(SMTPDataError) as refused:
        await jim.send([lost])
    assert (refused.value.code, refused.value.message) == (452, "4.3.1 Insufficient storage")
    await jim.send([kept])
    assert await stored(mailhog, lost) == []
    assert await stored(mailhog, kept) == [kept]


async def test_data_hang_holds_the_reply_until_jim_is_off(jim: JimAPI, mailhog: MailHog) -> None:
    to = address("held")
    await jim.faults({"Stage": "data", "Action": "hang"})
    sending = asyncio.create_task(jim.send([to]))
    try:
        await asyncio.sleep(0.3)
        assert not sending.done()
        assert await stored(mailhog, to) == []  # not before the 250
        await jim.off()
        await asyncio.wait_for(sending, 5)
    finally:
        sending.cancel()
    assert await stored(mailhog, to) == [to]


async def test_hang_for_seconds_then_as_usual(jim: JimAPI, mailhog: MailHog) -> None:
    to = address("slow")
    await jim.faults({"Stage": "data", "Action": "hang", "Seconds": 0.3})
    started = time.monotonic()
    await jim.send([to])
    assert time.monotonic() - started >= 0.3
    assert await stored(mailhog, to) == [to]


async def test_a_hang_ends_on_put_and_blocks_no_one_else(jim: JimAPI, mailhog: MailHog) -> None:
    await jim.faults({"Stage": "mail", "Action": "hang", "Match": "slow@"})
    slow = await jim.connect()
    await slow.ehlo()
    held = asyncio.create_task(slow.mail("slow@app.test"))
    try:
        await asyncio.sleep(0.2)
        assert not held.done()

        other = address("other")
        await asyncio.wait_for(jim.send([other]), 5)  # meanwhile, others get through
        assert await stored(mailhog, other) == [other]
        assert not held.done()

        assert (await jim.http.put(PATH, json={"Faults": []})).status_code == 200
        assert (await asyncio.wait_for(held, 5)).code == 250
    finally:
        held.cancel()
        slow.close()


async def test_after_data_disconnect_keeps_the_message(jim: JimAPI, mailhog: MailHog) -> None:
    to = address("dropped")
    await jim.faults({"Stage": "after_data", "Action": "disconnect", "Match": to})
    smtp = await jim.connect()
    try:
        refused, response = await smtp.sendmail("jim@app.test", [to], message([to], "once"))
        assert refused == {}
        assert response.startswith("Ok: queued as ")
        with pytest.raises(SMTPServerDisconnected):
            await smtp.noop()
    finally:
        smtp.close()
    assert await stored(mailhog, to) == [to]


async def test_rules_fire_before_mailhogs_dice(jim: JimAPI) -> None:
    await jim.faults(
        {"Stage": "mail", "Reply": "451 4.3.0 later", "Times": 1},
        {"Stage": "mail", "Reply": "550 never", "Chance": 0},
        RejectSenderChance=1,
    )
    smtp = await jim.connect()
    try:
        await smtp.ehlo()
        first = await smtp.execute_command(b"MAIL", b"FROM:<ada@app.test>")
        second = await smtp.execute_command(b"MAIL", b"FROM:<ada@app.test>")
    finally:
        smtp.close()
    assert first.code == 451
    assert (second.code, second.message) == (550, "Invalid sender ada@app.test")
    assert (await jim.rule(1))["Fired"] == 0


async def test_get_output_can_be_put_back(jim: JimAPI) -> None:
    await jim.faults({"Stage": "rcpt", "Reply": "452 4.5.3 too many", "Times": 3})
    settings = await jim.settings()
    assert (await jim.http.put(PATH, json=settings)).status_code == 200
    assert await jim.settings() == settings


@pytest.mark.parametrize(
    "body",
    [
        b"{not json",
        b"[1, 2]",
        b'{"AcceptChance": NaN}',
        b'{"AcceptChance": 1e999}',
        {"AcceptChance": "high"},
        {"Faults": {"Stage": "mail"}},
        {"Faults": [{"Stage": "nowhere", "Reply": "421 x"}]},
        {"Faults": [{"Stage": "mail"}]},
        {"Faults": [{"Stage": "mail", "Reply": "try later"}]},
        {"Faults": [{"Stage": "mail", "Reply": "250 fine"}]},
        {"Faults": [{"Stage": "mail", "Reply": "451 a\r\n250 b"}]},
        {"Faults": [{"Stage": "after_data", "Action": "reply", "Reply": "421 x"}]},
        {"Faults": [{"Stage": "connect", "Action": "disconnect", "Match": "x"}]},
        {"Faults": [{"Stage": "mail", "Action": "hang", "Seconds": -1}]},
        {"Faults": [{"Stage": "mail", "Action": "disconnect", "Seconds": 1}]},
        {"Faults": [{"Stage": "mail", "Reply": "451 x", "Times": 0}]},
        {"Faults": [{"Stage": "mail", "Reply": "451 x", "Chance": 2}]},
        {"Faults": [{"Stage": "mail", "Reply": "451 x", "Stgae": "rcpt"}]},
    ],
)
async def test_a_malformed_body_is_a_400_with_a_reason(
    jim: JimAPI, body: bytes | dict[str, Any]
) -> None:
    await jim.require_faults()
    content = body if isinstance(body, bytes) else None
    json = None if isinstance(body, bytes) else body
    response = await jim.http.post(PATH, content=content, json=json)
    assert response.status_code == 400
    assert response.json()["error"]
    assert (await jim.http.get(PATH)).status_code == 404  # still off

    await jim.on()
    response = await jim.http.put(PATH, content=content, json=json)
    assert response.status_code == 400
    assert (await jim.settings())["Faults"] == []  # unchanged
    assert (await jim.http.put(PATH)).status_code == 400  # PUT needs a body
