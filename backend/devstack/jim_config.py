"""Reading the JSON body of ``POST``/``PUT /api/v2/jim`` into Jim's settings and rules.

MailHog's fields (``AcceptChance`` …) are read as MailHog reads them: names match in any
letter case, unknown top-level names are ignored, and when a body is sent, the fields it
leaves out are 0 (MailHog's defaults apply only to a POST without a body, see
``docs/JIM.md``). One exception of ours: a body that carries ``Faults`` starts from no
random behaviour at all (``AcceptChance`` 1, every other chance 0), so that a rule list
alone gives deterministic faults. MailHog fields sent beside ``Faults`` still apply.

Unlike MailHog, which ignores a malformed POST body, a body that isn't JSON, or whose
fields have the wrong types, is refused (``JimConfigError``, a 400), for POST and PUT.

``Faults`` is a list of rules::

    {"Stage": "connect|helo|auth|mail|rcpt|data|after_data",
     "Action": "reply|hang|disconnect",  # default "reply" ("disconnect" at after_data)
     "Reply": "421 4.7.0 Try again later",  # for reply: the whole SMTP reply line
     "Match": "bob@example.com",  # mail/rcpt: in the command's address;
                                  # data/after_data: in any recipient; absent: always
     "Chance": 1.0,   # per occasion, default 1
     "Times": 3,      # fires at most this often, over all connections; absent: no limit
     "Seconds": 5.0}  # hang only: how long; absent: until Jim is changed or off
                      # (or aiosmtpd's 5-minute idle timeout closes the connection)

``Remaining`` and ``Fired`` (which GET adds) are accepted and ignored, so that what GET
returns can be sent back with PUT.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import replace
from typing import Any, cast

from backend.devstack.jim import (
    ACTIONS,
    CALM,
    MAILHOG_FIELDS,
    STAGES,
    ZERO,
    Action,
    Chances,
    Config,
    Rule,
    Stage,
)

MAX_RULES = 100
MAX_HANG_SECONDS = 86_400
MAX_REPLY_LENGTH = 512  # RFC 5321 4.5.3.1.5, with the CRLF
MATCH_STAGES: tuple[Stage, ...] = ("mail", "rcpt", "data", "after_data")
_REPLY = re.compile(r"[2-5][0-9][0-9]( [\x20-\x7e]*)?")
_RULE_FIELDS = ("Stage", "Action", "Reply", "Match", "Chance", "Times", "Seconds")
_IGNORED_RULE_FIELDS = ("Remaining", "Fired")


class JimConfigError(ValueError):
    """A body Jim can't take; the message says what is wrong, for a 400."""


def parse_body(body: bytes, *, remembered: Chances, required: bool) -> Config:
    """Jim's new settings from a request body; an empty body gives ``remembered``."""
    if not body.strip():
        if required:
            raise JimConfigError("the body must be a JSON object with Jim's settings")
        return Config(remembered, [])
    try:
        data = json.loads(body, parse_constant=_no_constant)
    except (ValueError, RecursionError) as exc:
        raise JimConfigError(f"the body is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise JimConfigError("the body must be a JSON object")
    # Go's encoding/json matches field names in any letter case; so do we.
    by_name = {key.casefold(): value for key, value in data.items()}
    faults = by_name.get("faults")
    base = ZERO if faults is None else CALM
    values: dict[str, float] = {}
    for name in MAILHOG_FIELDS:
        value = by_name.get(name.casefold())
        if value is not None:  # Go leaves a field alone for null
            values[name] = _number(value, name)
    return Config(replace(base, **values), _rules(faults))


def _no_constant(name: str) -> None:
    raise ValueError(f"{name} is not a JSON number")


def _number(value: object, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise JimConfigError(f"{where} must be a number, not {json.dumps(value)}")
    try:
        number = float(value)
    except OverflowError:
        number = math.inf
    if not math.isfinite(number):  # json reads 1e999 as infinity
        raise JimConfigError(f"{where} is too large")
    return number


def _rules(faults: object) -> list[Rule]:
    if faults is None:
        return []
    if not isinstance(faults, list):
        raise JimConfigError("Faults must be a list of rules")
    if len(faults) > MAX_RULES:
        raise JimConfigError(f"Faults may hold at most {MAX_RULES} rules")
    return [_rule(item, f"Faults[{index}]") for index, item in enumerate(faults)]


def _rule(item: object, where: str) -> Rule:
    if not isinstance(item, dict):
        raise JimConfigError(f"{where} must be an object")
    known = {name.casefold(): name for name in (*_RULE_FIELDS, *_IGNORED_RULE_FIELDS)}
    given: dict[str, Any] = {}
    for key, value in item.items():
        name = known.get(key.casefold())
        if name is None:
            expected = ", ".join(_RULE_FIELDS)
            raise JimConfigError(f"{where} has an unknown field {key!r} (known: {expected})")
        if value is not None and name not in _IGNORED_RULE_FIELDS:
            given[name] = value

    stage = _choice(given.get("Stage"), STAGES, f"{where}.Stage", required=True)
    stage_at = f"{where} (Stage {stage})"
    default_action = "disconnect" if stage == "after_data" else "reply"
    action = _choice(given.get("Action", default_action), ACTIONS, f"{where}.Action")
    if stage == "after_data" and action != "disconnect":
        raise JimConfigError(f"{stage_at}: after_data only takes Action disconnect")
    rule = Rule(cast(Stage, stage), cast(Action, action))

    if action == "reply":
        rule.reply = _reply(given.get("Reply"), stage, f"{where}.Reply")
    elif "Reply" in given:
        raise JimConfigError(f"{stage_at}: Reply is only for Action reply, not {action}")
    if "Match" in given:
        if stage not in MATCH_STAGES:
            raise JimConfigError(f"{stage_at}: Match is only for stages {', '.join(MATCH_STAGES)}")
        match = given["Match"]
        if not isinstance(match, str) or not match:
            raise JimConfigError(f"{where}.Match must be a non-empty string")
        rule.match = match
    if "Chance" in given:
        rule.chance = _number(given["Chance"], f"{where}.Chance")
        if not 0 <= rule.chance <= 1:
            raise JimConfigError(f"{where}.Chance must be between 0 and 1")
    if "Times" in given:
        times = given["Times"]
        if isinstance(times, bool) or not isinstance(times, int) or times < 1:
            raise JimConfigError(f"{where}.Times must be a whole number of at least 1")
        rule.times = times
    if "Seconds" in given:
        if action != "hang":
            raise JimConfigError(f"{stage_at}: Seconds is only for Action hang, not {action}")
        rule.seconds = _number(given["Seconds"], f"{where}.Seconds")
        if not 0 < rule.seconds <= MAX_HANG_SECONDS:
            raise JimConfigError(f"{where}.Seconds must be more than 0, at most {MAX_HANG_SECONDS}")
    return rule


def _choice(value: object, allowed: tuple[str, ...], where: str, *, required: bool = False) -> str:
    if value is None and required:
        raise JimConfigError(f"{where} is required (one of {', '.join(allowed)})")
    if not isinstance(value, str) or value.lower() not in allowed:
        raise JimConfigError(f"{where} must be one of {', '.join(allowed)}, not {value!r}")
    return value.lower()


def _reply(value: object, stage: str, where: str) -> str:
    if not isinstance(value, str):
        raise JimConfigError(f"{where} is required for Action reply: a full SMTP reply line")
    if len(value) > MAX_REPLY_LENGTH - 2 or not _REPLY.fullmatch(value):
        raise JimConfigError(
            f"{where} must be one SMTP reply line: a code from 200 to 599, then optionally"
            f" a space and printable ASCII text (e.g. '421 4.7.0 Try again later'),"
            f" not {value!r}"
        )
    if value.startswith(("2", "3")) and stage != "data":
        raise JimConfigError(
            f"{where} must be an error (4xx or 5xx) at stage {stage}; only data can"
            " answer 2xx (the message is then stored)"
        )
    if value.startswith("3"):
        raise JimConfigError(f"{where} at stage data must be 2xx, 4xx or 5xx")
    return value
