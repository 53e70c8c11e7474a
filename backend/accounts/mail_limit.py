"""MAIL_PER_ADDRESS_LIMIT: how many emails one address is sent, whichever path sends them.

Every path that queues an email to an address counts it here first, so that nobody can
use us to flood a mailbox: registration (its welcome email), the verification resend and
the "someone tried to register with your address" notice share one budget per mailbox.
"""

from backend.mail.addresses import mailbox_key
from backend.ratelimits import Limiter


class MailLimit:
    def __init__(self, limiter: Limiter) -> None:
        self._limiter = limiter

    async def retry_after(self, *, address: str) -> int | None:
        """Count one email to `address` before queueing it. None: queue it. A number:
        do not (nothing was counted); an email to it may go in that many seconds.

        Call it for the address as entered, before looking the account up, and count
        it whether or not an email will then go: a refusal that only a registered
        address can earn would tell who is registered. For the same reason a path that
        must answer alike for every address drops the email rather than answer 429.
        Raises RateLimitStorageUnavailable (or the database's error) if nothing counts.
        """
        return await self._limiter.hit(key=mailbox_key(address))

    async def count_sent(self, *, address: str) -> None:
        """Count an email that goes out whatever the budget says: a new account's welcome
        email (see `register`). Later resends and notices find the budget used."""
        await self._limiter.spend(key=mailbox_key(address))
