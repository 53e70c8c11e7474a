"""Per-client limits as the handlers use them: `check` counts the request and raises
RateLimited past the limit; backend/main.py answers it, in one place, with 429 and
Retry-After (as it answers HashingOverloaded with 503)."""

from collections.abc import Callable

from fastapi import Request

from backend.observability import metrics
from backend.ratelimits import Limiter
from backend.web.client_key import Networks, client_key
from backend.web.rendering import FormPage


class RateLimited(Exception):
    """A client past a limit, to be told to retry in `retry_after` seconds: `form` again
    with the message on it when the refusal came from a form post, else JSON
    `{"detail": detail}` (the API, and the operator page's basic auth)."""

    def __init__(self, retry_after: int, *, detail: str, form: FormPage | None = None) -> None:
        super().__init__(detail)
        self.retry_after = retry_after
        self.detail = detail
        self.form = form


def _count_nothing(channel: metrics.Channel) -> None:
    pass


class ClientLimit:
    def __init__(
        self,
        limiter: Limiter,
        *,
        trusted_proxies: Networks,
        detail: str,
        form_error: str,
        on_refused: Callable[[metrics.Channel], None] = _count_nothing,
    ) -> None:
        """`detail`: what the API says past the limit; `form_error`: what a form says,
        `{seconds}` standing for the wait; `on_refused`: a metric to count the refusal in."""
        self._limiter = limiter
        self._trusted_proxies = trusted_proxies
        self._detail = detail
        self._form_error = form_error
        self._on_refused = on_refused

    async def check(
        self, request: Request, *, channel: metrics.Channel, form: FormPage | None = None
    ) -> None:
        """Count this attempt; raise RateLimited past the limit. `form`: the page the
        refusal shows, with what was entered (never a password), for a form post.

        One statement on a pooled connection of its own, given back before the handler
        goes on: call it before the password is hashed, never inside a transaction."""
        if not self._limiter.enabled:
            return
        key = client_key(request, trusted_proxies=self._trusted_proxies)
        retry_after = await self._limiter.hit(key=key)
        if retry_after is None:
            return
        self._on_refused(channel)
        if form is not None:
            form = form.with_error(self._form_error.format(seconds=retry_after))
        raise RateLimited(retry_after, detail=self._detail, form=form)
