"""Signed, expiring email-verification tokens (no table needed).

The token carries the user id and the address it was sent to, so it stops working
if the address changes, and it expires after `max_age_seconds`.
"""

import enum
import uuid
from dataclasses import dataclass

from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer

_SALT = "email-verification"
# Real tokens are ~150 characters; anything far longer is junk, refused before any work.
_MAX_TOKEN_LENGTH = 1024


class TokenProblem(enum.Enum):
    EXPIRED = "expired"
    INVALID = "invalid"


@dataclass(frozen=True)
class VerificationClaim:
    user_id: uuid.UUID
    email: str


class VerificationTokens:
    def __init__(self, secret_key: str, *, max_age_seconds: int) -> None:
        self._serializer = URLSafeTimedSerializer(secret_key, salt=_SALT)
        self._max_age = max_age_seconds
        # What emails and pages say about it: "valid for 48 hours".
        self.lifetime = human_duration(max_age_seconds)

    def issue(self, *, user_id: uuid.UUID, email: str) -> str:
        return self._serializer.dumps({"uid": str(user_id), "email": email.lower()})

    def read(self, token: str) -> VerificationClaim | TokenProblem:
        if len(token) > _MAX_TOKEN_LENGTH:
            return TokenProblem.INVALID
        try:
            data = self._serializer.loads(token, max_age=self._max_age)
        except SignatureExpired:
            return TokenProblem.EXPIRED
        except BadSignature:
            return TokenProblem.INVALID
        try:
            return VerificationClaim(user_id=uuid.UUID(data["uid"]), email=str(data["email"]))
        except (KeyError, TypeError, ValueError):
            return TokenProblem.INVALID


_UNITS = (
    # Days only from three on: "48 hours" reads as a deadline, "2 days" as a vague one.
    ("day", 86400, 3 * 86400),
    ("hour", 3600, 3600),
    ("minute", 60, 60),
)


def human_duration(seconds: int) -> str:
    """`172800` → "48 hours", `259200` → "3 days", `1800` → "30 minutes".

    The largest unit that divides it exactly; a value that is not whole minutes is
    rounded down in the largest unit it reaches (a link then lasts a little longer than
    it says, never shorter)."""
    if seconds < 60:
        return _plural(seconds, "second")
    for name, size, least in _UNITS:
        if seconds >= least and seconds % size == 0:
            return _plural(seconds // size, name)
    name, size, _ = next(unit for unit in _UNITS if seconds >= unit[2])
    return _plural(seconds // size, name)


def _plural(count: int, unit: str) -> str:
    return f"{count} {unit}" if count == 1 else f"{count} {unit}s"
