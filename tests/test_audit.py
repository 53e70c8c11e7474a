"""audit_log rows: written by background work, once per outcome."""

import asyncio

import httpx
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from backend.audit.job_kind import KIND as AUDIT_KIND
from backend.audit.job_kind import AuditHandler
from backend.context import AppContext
from backend.settings import Settings
from tests.support.durability import claim_as_worker
from tests.support.helpers import register_via_api, rows


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


async def test_a_worker_that_lost_its_lease_writes_no_audit_row(
    settings: Settings, engine: AsyncEngine
) -> None:
    # A slow worker and the one that took its job over both finish: one row, the owner's.
    async with engine.begin() as connection:
        await connection.execute(
            text(
                "INSERT INTO jobs (kind, payload) VALUES (:kind, "
                '\'{"action": "test.once", "user_id": null}\'::jsonb)'
            ),
            {"kind": AUDIT_KIND},
        )
    [slow] = await claim_as_worker(engine, kinds=[AUDIT_KIND], lease_seconds=0.1)
    await asyncio.sleep(0.3)  # its lease runs out
    [owner] = await claim_as_worker(engine, kinds=[AUDIT_KIND], lease_seconds=60)
    assert owner.id == slow.id and owner.lease_token != slow.lease_token

    context = AppContext.build(settings)
    recorder = context.runner._recorder  # the runner's own recording path
    try:
        for job in (owner, slow):
            async for settled, outcome in AuditHandler().run([job]):
                await recorder.record(settled, outcome, None)
    finally:
        await context.close()

    assert len(await rows(engine, "SELECT id FROM audit_log WHERE action = 'test.once'")) == 1
    assert await rows(engine, "SELECT status, attempts FROM jobs") == [
        {"status": "succeeded", "attempts": 2}
    ]
