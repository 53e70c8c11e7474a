"""Retention of the features' rows, through the runner's generic tasks (`context.py`): the
audit log's personal data stripped after AUDIT_PERSONAL_DATA_DAYS, dead sign-in rows and
links deleted, suppressed addresses kept. Real Postgres, the tasks as the app builds them."""

import uuid
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker

from backend.accounts.retention import dead_rows
from backend.audit.retention import personal_data
from backend.context import AppContext
from backend.jobs.retention import Retention
from backend.settings import Settings
from tests.support.helpers import execute, rows

USER = uuid.UUID("00000000-0000-4000-8000-000000000001")


def _round(engine: AsyncEngine, *tasks: Any) -> Retention:
    sessionmaker = async_sessionmaker(engine, expire_on_commit=False)
    return Retention(sessionmaker, tasks, batch_size=2, pause_seconds=0.01)


async def _audit(engine: AsyncEngine, action: str, details: str, age: str) -> None:
    await execute(
        engine,
        "INSERT INTO audit_log (action, user_id, job_id, details, created_at) "
        "VALUES (:action, :user_id, 42, CAST(:details AS jsonb), "
        "now() - CAST(CAST(:age AS text) AS interval))",
        action=action,
        user_id=USER,
        details=details,
        age=age,
    )


async def test_old_audit_rows_lose_their_personal_data_and_keep_the_rest(
    engine: AsyncEngine, clean: None
) -> None:
    sent = (
        '{"message_id": "<m1@x>", "kind": "email.welcome", "to": "ada@example.com", "attempt": 1}'
    )
    registered = '{"username": "ada", "email": "ada@example.com", "channel": "api"}'
    lifted = '{"address": "b@example.com", "by": "ops", "via": "ops page", "client": "10.0.0.9"}'
    reverted = '{"email": "a@x.org", "restored": true, "sessions_revoked": 2, "channel": "form"}'
    for action, details in [
        ("email.sent", sent),
        ("user.registered", registered),
        ("suppression.removed", lifted),
        ("email.change_reverted", reverted),
    ]:
        await _audit(engine, action, details, "400 days")
    await _audit(engine, "user.registered", registered, "300 days")  # not old enough yet

    done = await _round(engine, personal_data(older_than_days=365)).run_round()

    assert done == {"audit rows stripped of personal data": 4}
    found = await rows(
        engine,
        "SELECT action, user_id, job_id, details, personal_data_removed_at IS NOT NULL "
        "AS stripped, created_at < now() - interval '399 days' AS time_kept "
        "FROM audit_log ORDER BY id",
    )
    common = {"user_id": USER, "job_id": 42}
    assert found == [
        {
            **common,
            "action": "email.sent",
            "details": {"message_id": "<m1@x>", "kind": "email.welcome", "attempt": 1},
            "stripped": True,
            "time_kept": True,
        },
        {
            **common,
            "action": "user.registered",
            "details": {"channel": "api"},
            "stripped": True,
            "time_kept": True,
        },
        {
            **common,
            "action": "suppression.removed",
            "details": {"by": "ops", "via": "ops page"},
            "stripped": True,
            "time_kept": True,
        },
        {
            **common,
            "action": "email.change_reverted",
            "details": {"restored": True, "sessions_revoked": 2, "channel": "form"},
            "stripped": True,
            "time_kept": True,
        },
        {
            **common,
            "action": "user.registered",
            "details": {"username": "ada", "email": "ada@example.com", "channel": "api"},
            "stripped": False,
            "time_kept": False,
        },
    ]
    # Stripped rows leave the index that finds them: the next round has nothing to do.
    assert await _round(engine, personal_data(older_than_days=365)).run_round() == {
        "audit rows stripped of personal data": 0
    }


async def _user(engine: AsyncEngine) -> None:
    await execute(
        engine,
        "INSERT INTO users (id, username, email, password_hash) "
        "VALUES (:id, 'ada', 'ada@example.com', 'x')",
        id=USER,
    )


async def _session(engine: AsyncEngine, name: str, *, expires: str, revoked: str | None) -> None:
    await execute(
        engine,
        "INSERT INTO sessions (user_id, token_hash, kind, expires_at, revoked_at) "
        "VALUES (:user_id, :name, 'browser', now() + CAST(CAST(:expires AS text) AS interval), "
        "now() - CAST(CAST(:revoked AS text) AS interval))",
        user_id=USER,
        name=name,
        expires=expires,
        revoked=revoked,
    )


async def test_dead_sign_in_rows_and_links_are_deleted_and_live_ones_kept(
    engine: AsyncEngine, clean: None
) -> None:
    await _user(engine)
    await _session(engine, "live", expires="1 day", revoked=None)
    await _session(engine, "revoked-lately", expires="1 day", revoked="2 days")
    await _session(engine, "revoked-long-ago", expires="1 day", revoked="8 days")
    await _session(engine, "expired-long-ago", expires="-9 days", revoked=None)
    for name, expires, used in [
        ("fresh", "1 hour", None),
        ("used-lately", "1 hour", "1 day"),
        ("used-long-ago", "-8 days", "8 days"),
        ("expired-long-ago", "-8 days", None),
    ]:
        await execute(
            engine,
            "INSERT INTO password_reset_tokens (user_id, token_hash, expires_at, used_at) "
            "VALUES (:user_id, :name, now() + CAST(CAST(:expires AS text) AS interval), "
            "now() - CAST(CAST(:used AS text) AS interval))",
            user_id=USER,
            name=name,
            expires=expires,
            used=used,
        )
    # Address changes: one whose revert link is still alive, one long over, one recent.
    for change_id, age, revert_expires in [(1, "20 days", "1 day"), (2, "20 days", "-13 days")]:
        await execute(
            engine,
            "INSERT INTO email_changes (id, user_id, old_email, new_email, created_at) "
            "OVERRIDING SYSTEM VALUE VALUES (:id, :user_id, 'ada@example.com', 'new@example.com', "
            "now() - CAST(CAST(:age AS text) AS interval))",
            id=change_id,
            user_id=USER,
            age=age,
        )
        await execute(
            engine,
            "INSERT INTO email_change_tokens (change_id, purpose, token_hash, expires_at) "
            "VALUES (:id, 'revert', :hash, now() + CAST(CAST(:expires AS text) AS interval))",
            id=change_id,
            hash=f"revert-{change_id}",
            expires=revert_expires,
        )
    await execute(
        engine,
        "INSERT INTO email_changes (id, user_id, old_email, new_email) OVERRIDING SYSTEM VALUE "
        "VALUES (3, :user_id, 'ada@example.com', 'other@example.com')",
        user_id=USER,
    )
    await execute(
        engine, "INSERT INTO email_suppressions (address, reason) VALUES ('z@x.org', 'r')"
    )
    await execute(
        engine,
        "UPDATE email_suppressions SET created_at = now() - interval '3 years'",
    )

    done = await _round(engine, *dead_rows(revert_days=7)).run_round()

    assert done == {
        "dead sessions": 2,
        "dead password reset links": 2,
        "dead address change links": 1,  # change 2's revert link, dead 13 days
        "finished address changes": 1,  # change 2 (its other tokens would go with it)
    }
    sessions = await rows(engine, "SELECT token_hash FROM sessions ORDER BY id")
    assert [s["token_hash"] for s in sessions] == ["live", "revoked-lately"]
    links = await rows(engine, "SELECT token_hash FROM password_reset_tokens ORDER BY id")
    assert [t["token_hash"] for t in links] == ["fresh", "used-lately"]
    changes = await rows(engine, "SELECT id FROM email_changes ORDER BY id")
    assert [c["id"] for c in changes] == [1, 3]
    assert await rows(engine, "SELECT address FROM email_suppressions") == [{"address": "z@x.org"}]


async def test_the_app_wires_the_features_into_its_retention_rounds(
    engine: AsyncEngine, settings: Settings
) -> None:
    await _user(engine)
    await _session(engine, "expired-long-ago", expires="-9 days", revoked=None)
    await _audit(engine, "user.email_verified", '{"email": "ada@example.com"}', "400 days")
    await execute(
        engine,
        "INSERT INTO jobs (kind, payload, status, finished_at) "
        "VALUES ('audit.write', '{}', 'succeeded', now() - interval '15 days')",
    )

    forever = AppContext.build(settings.model_copy(update={"audit_personal_data_days": 0}))
    try:
        assert await forever.runner.purge() == 2  # the job and the session; no audit task
    finally:
        await forever.close()
    assert await rows(engine, "SELECT details FROM audit_log") == [
        {"details": {"email": "ada@example.com"}}
    ]

    context = AppContext.build(settings)  # AUDIT_PERSONAL_DATA_DAYS: 365 by default
    try:
        assert await context.runner.purge() == 1
    finally:
        await context.close()
    assert await rows(engine, "SELECT details FROM audit_log") == [{"details": {}}]
    assert await rows(engine, "SELECT id FROM sessions") == []
    assert await rows(engine, "SELECT id FROM jobs") == []
