"""SIGNIN_RATE_LIMIT per account: sign-in attempts counted per login as typed.

Counted per login string (lower-cased), before the account is looked up, whether or not
an account has it: a refusal that only an existing account could earn would tell who is
registered. A stranger can use up an account's count, so a completed password reset
clears it (`clear`): the owner is never locked out for longer than a reset takes.
"""

from collections.abc import Iterable

from backend.accounts.signin import login_key
from backend.ratelimits import Limiter


class AccountSigninLimit:
    def __init__(self, limiter: Limiter) -> None:
        self._limiter = limiter

    async def retry_after(self, *, login: str) -> int | None:
        """Count one attempt on `login`: None to go on, else the seconds to wait."""
        return await self._limiter.hit(key=login_key(login))

    async def clear(self, *, logins: Iterable[str]) -> None:
        """Forget the attempts on each of these logins (an account's username and address)."""
        for login in logins:
            await self._limiter.clear(key=login_key(login))
