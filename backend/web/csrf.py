"""CSRF protection for the HTML form: a signed double-submit token.

The browser holds a random value in an HttpOnly cookie; the form carries that value
signed with SECRET_KEY and timestamped. A cross-site page can make the browser send
the cookie but can neither read it nor forge the signed field that must match it.
"""

import secrets

from fastapi import Request, Response
from itsdangerous import BadSignature, URLSafeTimedSerializer

COOKIE_NAME = "csrftoken"
FIELD_NAME = "csrf_token"
MAX_AGE_SECONDS = 2 * 3600
# What a form says when its token does not check out (it is shown again, with a new one).
FORM_REFUSED = "This form expired or did not come from this site. Please submit it again."


class Csrf:
    def __init__(self, secret_key: str, *, secure_cookies: bool) -> None:
        self._serializer = URLSafeTimedSerializer(secret_key, salt="csrf")
        self._secure = secure_cookies

    def issue(self, request: Request) -> tuple[str, str | None]:
        """The form token for this browser, and a cookie value to set if it has none yet."""
        value = request.cookies.get(COOKIE_NAME)
        new_cookie = None
        if not value:
            value = new_cookie = secrets.token_urlsafe(32)
        return self._serializer.dumps(value), new_cookie

    def set_cookie(self, response: Response, value: str) -> None:
        response.set_cookie(
            COOKIE_NAME,
            value,
            max_age=MAX_AGE_SECONDS,
            httponly=True,
            samesite="lax",
            secure=self._secure,
        )

    def is_valid(self, request: Request, submitted: str) -> bool:
        cookie = request.cookies.get(COOKIE_NAME)
        if not cookie or not submitted:
            return False
        try:
            signed_value = self._serializer.loads(submitted, max_age=MAX_AGE_SECONDS)
        except BadSignature:
            return False
        return secrets.compare_digest(str(signed_value), cookie)
