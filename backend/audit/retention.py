"""The audit log's personal data, stripped after AUDIT_PERSONAL_DATA_DAYS (a retention task
the job runner runs, `jobs.retention`; wired in `context.py`).

A stripped row keeps its action, `user_id`, `job_id` and time, and of its details only
the keys in `KEPT`: what happened, never to whom by address. An allowlist, not a list of
personal keys: a key a later feature adds is dropped unless someone decides it is safe to
keep. Dropped today: `to`, `email`, `old_email` (addresses), `address` (a suppressed one),
`username`, `client` (an operator's IP address). `error` and `last_error` are kept: the
relay's answers are stored masked (`mail.faults`).
"""

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from backend.jobs.retention import RetentionTask

KEPT = (
    "message_id",
    "kind",
    "attempt",
    "attempts",
    "channel",
    "outcome",
    "notice",
    "error",
    "last_error",
    "reason",
    "by",
    "via",
    "filter",
    "since",
    "replaced_by",
    "sessions_revoked",
    "restored",
)

# The oldest rows not yet stripped, through ix_audit_log_personal_data; each leaves it.
_STRIP = text(
    """
    UPDATE audit_log
    SET personal_data_removed_at = now(),
        details = (SELECT coalesce(jsonb_object_agg(key, value), '{}'::jsonb)
                   FROM jsonb_each(details) WHERE key = ANY(:kept))
    WHERE id = ANY(ARRAY(SELECT id FROM audit_log
                 WHERE personal_data_removed_at IS NULL
                   AND created_at < now() - make_interval(days => :days)
                 ORDER BY created_at LIMIT :limit FOR UPDATE SKIP LOCKED))
    """
)


def personal_data(*, older_than_days: int) -> RetentionTask:
    async def batch(session: AsyncSession, limit: int) -> int:
        result = await session.execute(
            _STRIP, {"kept": list(KEPT), "days": older_than_days, "limit": limit}
        )
        return int(result.rowcount)  # type: ignore[attr-defined]

    return RetentionTask(name="audit rows stripped of personal data", batch=batch)
