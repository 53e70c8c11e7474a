"""CSRF protection for the HTML forms: a signed double-submit token, per form, and the
browser's own word on where the post came from.

The browser holds a random value in an HttpOnly cookie; each form carries that value
signed with SECRET_KEY, timestamped and bound to that form. A cross-site page can make the
browser send the cookie but can neither read it nor forge the signed field that must
match it; and a token lifted from one form (the public registration page, say) does not
work on another (the operator's). A post the browser marks `Sec-Fetch-Site: cross-site`
or `same-site` (a sibling subdomain is not this site) is refused, and, from a browser too
old to say, one whose `Origin` names another host, as Django does. Under https the cookie is
`__Host-csrftoken`: only this host over https can set it, so a sibling subdomain cannot
plant a cookie of its own choosing (cookie tossing).
"""

import secrets
from urllib.parse import urlsplit

from fastapi import Request, Response
from itsdangerous import BadSignature, URLSafeTimedSerializer

COOKIE_NAME = "csrftoken"
SECURE_COOKIE_NAME = "__Host-csrftoken"
FIELD_NAME = "csrf_token"
MAX_AGE_SECONDS = 2 * 3600
# What a form says when its token does not check out (it is shown again, with a new one).
FORM_REFUSED = "This form expired or did not come from this site. Please submit it again."
# "none": the user's own navigation (a bookmark, the address bar); the rest are other sites.
_FETCH_SITES_ALLOWED = frozenset({"same-origin", "none"})


class Csrf:
    def __init__(
        self, secret_key: str, *, secure_cookies: bool, hosts: frozenset[str] = frozenset()
    ) -> None:
        """`hosts`: the names this app is served under (ALLOWED_HOSTS), which an `Origin`
        may name."""
        self._secret_key = secret_key
        self._secure = secure_cookies
        self.cookie_name = SECURE_COOKIE_NAME if secure_cookies else COOKIE_NAME
        self._hosts = hosts

    def _serializer(self, form: str) -> URLSafeTimedSerializer:
        return URLSafeTimedSerializer(self._secret_key, salt=f"csrf:{form}")

    def issue(self, request: Request, *, form: str) -> tuple[str, str | None]:
        """The token for this browser and this form, and a cookie value to set if the
        browser has none yet."""
        value = request.cookies.get(self.cookie_name)
        new_cookie = None
        if not value:
            value = new_cookie = secrets.token_urlsafe(32)
        return self.token_for(value, form=form), new_cookie

    def token_for(self, cookie: str, *, form: str) -> str:
        """The form field that goes with this cookie value on this form."""
        return self._serializer(form).dumps(cookie)

    def set_cookie(self, response: Response, value: str) -> None:
        # Path "/" and no Domain: what the __Host- prefix requires.
        response.set_cookie(
            self.cookie_name,
            value,
            max_age=MAX_AGE_SECONDS,
            path="/",
            httponly=True,
            samesite="lax",
            secure=self._secure,
        )

    def is_valid(self, request: Request, submitted: str, *, form: str) -> bool:
        if not self._from_this_site(request):
            return False
        cookie = request.cookies.get(self.cookie_name)
        if not cookie or not submitted:
            return False
        try:
            signed_value = self._serializer(form).loads(submitted, max_age=MAX_AGE_SECONDS)
        except BadSignature:
            return False
        return secrets.compare_digest(str(signed_value), cookie)

    def _from_this_site(self, request: Request) -> bool:
        fetch_site = request.headers.get("sec-fetch-site")
        if fetch_site is not None:
            # Every current browser sends it, and it is the browser's own word.
            return fetch_site in _FETCH_SITES_ALLOWED
        origin = request.headers.get("origin")
        if origin is None or origin == "null":
            # Older browsers and tools send no Origin; and under this site's
            # `Referrer-Policy: no-referrer` a browser's form post from our own page says
            # "null". The signed token decides.
            return True
        host = urlsplit(origin).hostname or ""
        return host in self._hosts or host == (request.url.hostname or "")
