"""Jobs in every state and several kinds, and a suppressed address, to show on the operator
page: for its tests and for scripts/screenshot_ops.py."""

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

# In every payload below: the page must never show it.
PAYLOAD_SECRET = "payload-secret@example.com"

# Inert however long they sit beside a running app: the pending ones are due in an hour
# (a backoff), the running ones hold a lease for an hour, the rest are finished.
_SEED = text(
    """
    INSERT INTO jobs (kind, payload, status, attempts, run_after, created_at, leased_until,
                      lease_token, last_error, finished_at)
    SELECT kind, jsonb_build_object('to', CAST(:secret AS text), 'token', 'tok-' || n),
           status, attempts, now() + interval '1 hour', now() - make_interval(mins => 90 - n),
           CASE WHEN status = 'running' THEN now() + interval '1 hour' END,
           CASE WHEN status = 'running' THEN gen_random_uuid() END,
           error,
           CASE WHEN status IN ('succeeded', 'failed', 'cancelled') THEN now() END
    FROM (VALUES
        (1, 'email.welcome', 'succeeded', 1, NULL),
        (2, 'audit.write', 'succeeded', 1, NULL),
        (3, 'email.welcome', 'failed', 1,
         '550 5.1.1 <bounced@example.com>: Recipient address rejected: User unknown'),
        (4, 'email.verification', 'failed', 40,
         'gave up after 120 hours in the queue; last error: 451 4.3.0 mailbox busy'),
        (5, 'email.welcome', 'pending', 3, '421 4.7.0 Try again later'),
        (6, 'email.registration_attempt', 'pending', 0, NULL),
        (7, 'email.welcome', 'running', 1, NULL),
        (8, 'email.welcome', 'cancelled', 2, '450 4.2.1 Mailbox busy'),
        (9, 'audit.write', 'succeeded', 1, NULL),
        (10, 'email.welcome', 'failed', 1, '552 5.3.4 Message size exceeds fixed limit')
    ) AS seed (n, kind, status, attempts, error)
    ORDER BY n
    RETURNING id, status
    """
)
SUPPRESSED_ADDRESS = "bounced@example.com"
_REFUSAL = "SMTPRecipientsRefused: 550 5.1.1 <***@example.com>: Recipient address rejected"
_SUPPRESSION = text(
    """
    INSERT INTO email_suppressions (address, reason, created_at)
    VALUES (:address, :reason, now() - interval '80 minutes')
    ON CONFLICT DO NOTHING
    """
)


async def seed_jobs(engine: AsyncEngine) -> dict[str, list[int]]:
    """Ten jobs in every state and several kinds, and one suppressed address; returns the
    jobs' ids by state."""
    async with engine.begin() as connection:
        result = await connection.execute(_SEED, {"secret": PAYLOAD_SECRET})
        ids: dict[str, list[int]] = {}
        for row in result:
            ids.setdefault(row.status, []).append(row.id)
        await connection.execute(_SUPPRESSION, {"address": SUPPRESSED_ADDRESS, "reason": _REFUSAL})
    return ids
