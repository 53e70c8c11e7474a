"""The cookie that lets the browser that registered follow its welcome email on
/register/done: the username and address it typed and the id of the email queued for
it, signed with SECRET_KEY.

A cookie, not the URL: a link to /register/done?job=… could be shared, logged or guessed
(ids are sequential) and would show a stranger whether someone's email went out. The
signature is the only authority, and only this browser holds it: HttpOnly, SameSite=Lax,
a day long, and `Secure` with the `__Host-` prefix under https, as the session cookie.
It holds what this browser typed, and the job id masked: XORed with an HMAC (keyed by
SECRET_KEY) of a random nonce of its own, so that reading the cookie tells its holder
neither the queue's size nor, in enumeration-safe mode, whether an email was queued at
all (a notice past its budget has none: masked 0, as random as any id).
"""

import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime

from fastapi import Request, Response
from itsdangerous import BadSignature, URLSafeTimedSerializer

COOKIE_NAME = "registered"
SECURE_COOKIE_NAME = "__Host-registered"
MAX_AGE_SECONDS = 24 * 3600


@dataclass(frozen=True)
class RegisteredBrowser:
    username: str
    email: str
    # None when no email was queued (an enumeration-safe notice past its budget).
    email_job_id: int | None
    # When it registered (the cookie's signing time).
    at: datetime


class RegisteredCookie:
    def __init__(self, secret_key: str, *, secure: bool) -> None:
        self._signer = URLSafeTimedSerializer(secret_key, salt="registered")
        self._mask_key = hmac.digest(secret_key.encode(), b"registered: job id mask", "sha256")
        self._secure = secure
        self.name = SECURE_COOKIE_NAME if secure else COOKIE_NAME

    def value(self, *, username: str, email: str, email_job_id: int | None) -> str:
        """The cookie's signed value."""
        nonce = secrets.token_urlsafe(12)
        job = f"{(email_job_id or 0) ^ self._pad(nonce):016x}"
        return self._signer.dumps(
            {"username": username, "email": email, "nonce": nonce, "job": job}
        )

    def set(
        self, response: Response, *, username: str, email: str, email_job_id: int | None
    ) -> None:
        value = self.value(username=username, email=email, email_job_id=email_job_id)
        # Path "/" and no Domain: what the __Host- prefix requires.
        response.set_cookie(
            self.name,
            value,
            max_age=MAX_AGE_SECONDS,
            path="/",
            httponly=True,
            samesite="lax",
            secure=self._secure,
        )

    def read(self, request: Request) -> RegisteredBrowser | None:
        """What the cookie says, or None: absent, forged, expired or malformed alike."""
        try:
            value, signed_at = self._signer.loads(
                request.cookies.get(self.name, ""), max_age=MAX_AGE_SECONDS, return_timestamp=True
            )
        except BadSignature:
            return None
        if not isinstance(value, dict):
            return None
        fields = [value.get(key) for key in ("username", "email", "nonce", "job")]
        if not all(isinstance(field, str) for field in fields):
            return None
        username, email, nonce, job = map(str, fields)
        try:
            job_id = int(job, 16) ^ self._pad(nonce)
        except ValueError:
            return None
        if not 0 <= job_id < 2**63:  # no bigint id: not one we made
            return None
        return RegisteredBrowser(username, email, job_id or None, signed_at)

    def _pad(self, nonce: str) -> int:
        """64 bits of HMAC-SHA256(nonce): a fresh mask per cookie."""
        return int.from_bytes(hmac.digest(self._mask_key, nonce.encode(), "sha256")[:8], "big")
