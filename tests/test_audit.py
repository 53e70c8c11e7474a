"""audit_log rows: written by background work, once per job."""

import uuid

import httpx
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker

from backend.audit.service import AuditEntry, record
from tests.helpers import register_via_api, rows


async def test_registration_leaves_registered_and_sent_rows(
    client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    user = await register_via_api(client, "ada")

    audit = await rows(
        engine, "SELECT action, user_id, job_id, details FROM audit_log ORDER BY action"
    )

    assert [a["action"] for a in audit] == ["email.sent", "user.registered"]
    assert {str(a["user_id"]) for a in audit} == {user["id"]}
    registered = audit[1]["details"]
    assert registered == {"username": "ada", "email": "ada@example.com", "channel": "api"}
    assert audit[0]["details"]["to"] == "ada@example.com"
    jobs = await rows(engine, "SELECT id, status FROM jobs ORDER BY id")
    assert {j["status"] for j in jobs} == {"succeeded"}
    assert {a["job_id"] for a in audit} == {j["id"] for j in jobs}


async def test_a_job_writes_its_row_once_even_when_run_twice(
    client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    user = await register_via_api(client, "ada")
    entry = AuditEntry("user.registered", uuid.UUID(user["id"]), {"again": True})
    [job] = await rows(engine, "SELECT job_id FROM audit_log WHERE action = 'user.registered'")

    async with async_sessionmaker(engine)() as session, session.begin():
        written = await record(session, entry, job_id=job["job_id"])

    assert written is False
    assert len(await rows(engine, "SELECT id FROM audit_log WHERE action = 'user.registered'")) == 1
