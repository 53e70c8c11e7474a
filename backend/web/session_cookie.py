"""The browser session's cookie: the opaque token, HttpOnly and SameSite=Lax, and
`Secure` with the `__Host-` prefix when APP_BASE_URL is https (as the CSRF cookie), so
that neither a script nor a sibling subdomain can read or plant it."""

from fastapi import Request, Response

COOKIE_NAME = "session"
SECURE_COOKIE_NAME = "__Host-session"


class SessionCookie:
    def __init__(self, *, secure: bool, max_age_seconds: int) -> None:
        self._secure = secure
        self._max_age = max_age_seconds
        self.name = SECURE_COOKIE_NAME if secure else COOKIE_NAME

    def read(self, request: Request) -> str:
        return request.cookies.get(self.name, "")

    def set(self, response: Response, token: str) -> None:
        # Path "/" and no Domain: what the __Host- prefix requires.
        response.set_cookie(
            self.name,
            token,
            max_age=self._max_age,
            path="/",
            httponly=True,
            samesite="lax",
            secure=self._secure,
        )

    def clear(self, response: Response) -> None:
        response.delete_cookie(
            self.name, path="/", httponly=True, samesite="lax", secure=self._secure
        )
