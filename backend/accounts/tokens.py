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
