"""The cookie that lets the browser that registered follow its welcome email on
/register/done: the username and address it typed and the id of the email queued for
it, signed with SECRET_KEY.

A cookie, not the URL: a link to /register/done?job=… could be shared, logged or guessed
(ids are sequential) and would show a stranger whether someone's email went out. The
signature is the only authority, and only this browser holds it: HttpOnly, SameSite=Lax,
a day long, and `Secure` with the `__Host-` prefix under https, as the session cookie.
It holds only what this browser typed or was told, so reading it (it is signed, not
encrypted) tells its holder nothing new.
"""

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
        self._secure = secure
        self.name = SECURE_COOKIE_NAME if secure else COOKIE_NAME

    def set(
        self, response: Response, *, username: str, email: str, email_job_id: int | None
    ) -> None:
        value = self._signer.dumps({"username": username, "email": email, "job": email_job_id})
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
        username, email, job = value.get("username"), value.get("email"), value.get("job")
        if not (isinstance(username, str) and isinstance(email, str)):
            return None
        # bool is an int: refused, as any id a bigint cannot hold.
        if job is not None and (isinstance(job, bool) or not isinstance(job, int)):
            return None
        if isinstance(job, int) and not 0 < job < 2**63:
            return None
        return RegisteredBrowser(username, email, job, signed_at)
