"""Jim, MailHog's chaos monkey, for the dev inbox: his settings, our fault rules, his dice.

MailHog's part follows MailHog-Server v1.0.1 (``monkey/jim.go``, ``smtp/session.go``):

- ``AcceptChance``: a new connection is closed at once, before the greeting, when a roll
  lands above it;
- ``DisconnectChance``: after each command's reply, the connection is dropped on a hit;
- ``LinkSpeedAffect``: on a hit at connect, that connection is throttled (both ways) to a
  rate drawn between ``LinkSpeedMin`` and ``LinkSpeedMax``, times eight, in bytes per
  second: what MailHog users get, since ``monkey/jim.go`` and ``smtp/session.go`` both
  multiply the drawn number by ``linkio.BytePerSecond`` (8 bits);
- ``RejectSenderChance``, ``RejectRecipientChance``: ``MAIL FROM`` / ``RCPT TO`` get
  ``550 Invalid sender <address>`` / ``550 Invalid recipient <address>``;
- ``RejectAuthChance``: ``AUTH`` gets ``500 Unrecognised command``.

Ours, the ``Faults`` rules (see ``jim_config``), are deterministic: the first rule of a stage
that matches and whose ``Chance`` hits fires, before any of MailHog's dice are rolled for
that occasion. A ``hang`` lasts ``Seconds``, or until Jim is turned off or changed.

Everything here runs on the inbox's one event loop (the SMTP server and the HTTP API share
it), so there are no locks.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import Iterable
from dataclasses import dataclass, fields
from typing import Any, Literal

Stage = Literal["connect", "helo", "auth", "mail", "rcpt", "data", "after_data"]
Action = Literal["reply", "hang", "disconnect"]
STAGES: tuple[Stage, ...] = ("connect", "helo", "auth", "mail", "rcpt", "data", "after_data")
ACTIONS: tuple[Action, ...] = ("reply", "hang", "disconnect")

# MailHog's own replies (github.com/mailhog/smtp protocol.go and reply.go, and
# MailHog-Server smtp/session.go for AUTH).
REJECTED_AUTH_REPLY = "500 Unrecognised command"

# MailHog multiplies the drawn LinkSpeed by linkio.BytePerSecond twice (once in Jim, once
# in the session), so a setting of 200 throttles to 1,600 bytes a second: eight times.
MAILHOG_LINK_SPEED_FACTOR = 8


def rejected_sender_reply(address: str) -> str:
    return f"550 Invalid sender {address}"


def rejected_recipient_reply(address: str) -> str:
    return f"550 Invalid recipient {address}"


@dataclass(frozen=True)
class Chances:
    """MailHog's settings, with its JSON names, in the order MailHog serialises them."""

    DisconnectChance: float
    AcceptChance: float
    LinkSpeedAffect: float
    LinkSpeedMin: float
    LinkSpeedMax: float
    RejectSenderChance: float
    RejectRecipientChance: float
    RejectAuthChance: float

    def as_json(self) -> dict[str, float | int]:
        return {f.name: _number(getattr(self, f.name)) for f in fields(self)}


MAILHOG_FIELDS: tuple[str, ...] = tuple(f.name for f in fields(Chances))
# MailHog's flag defaults (monkey/jim.go RegisterFlags), used for a POST without a body.
DEFAULTS = Chances(0.005, 0.99, 0.1, 1024, 10240, 0.05, 0.05, 0.05)
# What a body with Faults starts from: no random behaviour at all, so tests are deterministic.
CALM = Chances(0, 1, 0, 1024, 10240, 0, 0, 0)
# What a MailHog body starts from: Go's zero value (fields not sent are 0, as in MailHog).
ZERO = Chances(0, 0, 0, 0, 0, 0, 0, 0)


@dataclass
class Rule:
    """One of our fault rules. ``fired`` counts across all connections."""

    stage: Stage
    action: Action
    reply: str | None = None
    match: str | None = None
    chance: float = 1.0
    times: int | None = None
    seconds: float | None = None
    fired: int = 0

    @property
    def remaining(self) -> int | None:
        return None if self.times is None else max(self.times - self.fired, 0)

    def applies(self, stage: Stage, addresses: Iterable[str]) -> bool:
        if self.stage != stage or self.remaining == 0:
            return False
        if self.match is None:
            return True
        needle = self.match.casefold()
        return any(needle in address.casefold() for address in addresses)

    def as_json(self) -> dict[str, Any]:
        return {
            "Stage": self.stage,
            "Action": self.action,
            "Reply": self.reply,
            "Match": self.match,
            "Chance": _number(self.chance),
            "Times": self.times,
            "Seconds": None if self.seconds is None else _number(self.seconds),
            "Remaining": self.remaining,
            "Fired": self.fired,
        }


@dataclass(frozen=True)
class Config:
    chances: Chances
    rules: list[Rule]


class Jim:
    """On or off; when on, his settings and rules, and the dice for every decision."""

    def __init__(self, rng: random.Random | None = None) -> None:
        self._rng = rng or random.Random()
        self._chances: Chances | None = None  # None: Jim is off
        self._rules: list[Rule] = []
        # As in MailHog, a POST without a body brings back the last settings sent.
        self.remembered = DEFAULTS
        self._changed = asyncio.Event()
        self.generation = 0

    @property
    def enabled(self) -> bool:
        return self._chances is not None

    def turn_on(self, config: Config) -> None:
        self._set(config)

    def change(self, config: Config) -> None:
        self._set(config)

    def turn_off(self) -> None:
        self._chances = None
        self._rules = []
        self._release()

    def _set(self, config: Config) -> None:
        self._chances = config.chances
        self._rules = config.rules
        self._release()

    def _release(self) -> None:
        """Ends every hang and link-speed limit that the old settings started."""
        self.generation += 1
        self._changed.set()
        self._changed = asyncio.Event()

    def as_json(self) -> dict[str, Any]:
        assert self._chances is not None
        return {**self._chances.as_json(), "Faults": [rule.as_json() for rule in self._rules]}

    # Our rules.

    def fault(self, stage: Stage, addresses: Iterable[str] = ()) -> Rule | None:
        """The rule that fires on this occasion, if any; it is counted as fired."""
        if self._chances is None:
            return None
        addresses = list(addresses)
        for rule in self._rules:
            if rule.applies(stage, addresses) and self._rng.random() < rule.chance:
                rule.fired += 1
                return rule
        return None

    async def hold(self, seconds: float | None) -> None:
        """A hang: wait ``seconds`` (None: forever), cut short when Jim is changed or off."""
        changed = self._changed
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(changed.wait(), seconds)

    # MailHog's dice. Each is False (or None) while Jim is off.

    def refuses_connection(self) -> bool:
        return self._chances is not None and self._rng.random() > self._chances.AcceptChance

    def link_speed(self) -> float | None:
        """Bytes per second for a throttled connection, or None for full speed."""
        chances = self._chances
        if chances is None or not self._rng.random() < chances.LinkSpeedAffect:
            return None
        spread = chances.LinkSpeedMax - chances.LinkSpeedMin
        drawn = chances.LinkSpeedMin + spread * self._rng.random()
        # A rate below 1 byte/s (MailHog would divide by it) is taken as 1 byte/s.
        return max(drawn * MAILHOG_LINK_SPEED_FACTOR, 1.0)

    def disconnects(self) -> bool:
        return self._roll("DisconnectChance")

    def rejects_sender(self) -> bool:
        return self._roll("RejectSenderChance")

    def rejects_recipient(self) -> bool:
        return self._roll("RejectRecipientChance")

    def rejects_auth(self) -> bool:
        return self._roll("RejectAuthChance")

    def _roll(self, name: str) -> bool:
        if self._chances is None:
            return False
        chance: float = getattr(self._chances, name)
        return self._rng.random() < chance


def _number(value: float) -> float | int:
    """Whole numbers as JSON integers, as Go's encoder writes them (1024, not 1024.0)."""
    return int(value) if float(value).is_integer() else value
