"""Dead sign-in and link rows, deleted a while after they stopped working (retention tasks
the job runner runs, `jobs.retention`; wired in `context.py`).

Dead: a session revoked or expired; a reset or address-change link used or expired; an
address change whose links are all dead and whose revert window has passed (its tokens
go with it, `ON DELETE CASCADE`). They are kept `DEAD_KEPT_DAYS` after that, so that a
support question about last week's sign-out or link can still be answered from them. The
suppression list is never purged: forgetting it would mail a refusing address again.

No index serves these: each table holds one row per sign-in or link, a small fraction of
the jobs, and a batch reads it once; `LIMIT` bounds what each statement deletes.
"""

from collections.abc import Sequence

from sqlalchemy import TextClause, text
from sqlalchemy.ext.asyncio import AsyncSession

from backend.jobs.retention import RetentionTask

DEAD_KEPT_DAYS = 7

_SESSIONS = text(
    """
    DELETE FROM sessions WHERE id = ANY(ARRAY(
        SELECT id FROM sessions
        WHERE revoked_at < now() - make_interval(days => :kept)
           OR expires_at < now() - make_interval(days => :kept)
        LIMIT :limit FOR UPDATE SKIP LOCKED))
    """
)
_LINK_TOKENS = """
    DELETE FROM {table} WHERE id = ANY(ARRAY(
        SELECT id FROM {table}
        WHERE used_at < now() - make_interval(days => :kept)
           OR expires_at < now() - make_interval(days => :kept)
        LIMIT :limit FOR UPDATE SKIP LOCKED))
    """
_RESET_TOKENS = text(_LINK_TOKENS.format(table="password_reset_tokens"))
_CHANGE_TOKENS = text(_LINK_TOKENS.format(table="email_change_tokens"))
# A change's revert link is written when its notice is sent, which can be days after the
# request (the relay down): a live token, not the request's age, says the change is alive.
_CHANGES = text(
    """
    DELETE FROM email_changes WHERE id = ANY(ARRAY(
        SELECT c.id FROM email_changes AS c
        WHERE c.created_at
              < now() - make_interval(days => CAST(:revert_days AS int) + CAST(:kept AS int))
          AND NOT EXISTS (SELECT 1 FROM email_change_tokens AS t
                          WHERE t.change_id = c.id AND t.used_at IS NULL
                            AND t.expires_at > now() - make_interval(days => :kept))
        LIMIT :limit FOR UPDATE OF c SKIP LOCKED))
    """
)


def dead_rows(*, revert_days: int) -> Sequence[RetentionTask]:
    def task(name: str, statement: TextClause, **values: int) -> RetentionTask:
        async def batch(session: AsyncSession, limit: int) -> int:
            params = {"kept": DEAD_KEPT_DAYS, "limit": limit, **values}
            result = await session.execute(statement, params)
            return int(result.rowcount)  # type: ignore[attr-defined]

        return RetentionTask(name=name, batch=batch)

    return (
        task("dead sessions", _SESSIONS),
        task("dead password reset links", _RESET_TOKENS),
        task("dead address change links", _CHANGE_TOKENS),
        task("finished address changes", _CHANGES, revert_days=revert_days),
    )
