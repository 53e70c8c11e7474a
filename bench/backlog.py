"""Benchmark: how fast a backlog of welcome emails drains, by connection mode and network.

Queues N welcome-email jobs (as an SMTP outage would leave them), then lets the job
runner drain them, timing until the last message is in the inbox. Three modes, run
interleaved in the same process against the same Postgres and inbox so that machine
noise hits all alike: one SMTP connection per message (MAIL_BATCH_SIZE=1 with
MAIL_CONNECTION_IDLE_SECONDS=0), one connection reused for the whole drain, and four
such connections at once (JOB_CONCURRENCY=4). The inbox
runs in its own process; mail goes through the test suite's SMTP proxy, which counts
the connections and, in the second scenario, adds a network round trip (loopback
hides what a connection costs). Writes bench/RESULTS.md.
"""

import argparse
import asyncio
import statistics
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import httpx
from sqlalchemy import text

from backend.accounts.passwords import PasswordHasher
from backend.context import AppContext
from backend.devstack.smtp_proxy import SmtpProxy
from backend.settings import Settings

# mode -> (MAIL_BATCH_SIZE, JOB_CONCURRENCY, MAIL_CONNECTION_IDLE_SECONDS)
MODES = {
    "one connection per message": (1, 1, 0.0),
    "one reused connection": (50, 1, 5.0),
    "4 reused connections at once": (50, 4, 5.0),
}
SCENARIOS = {"loopback": 0.0, "2 ms round trip": 0.001}  # scenario -> one-way delay (s)


async def queue_backlog(context: AppContext, count: int, password_hash: str) -> None:
    async with context.engine.begin() as connection:
        await connection.execute(text("TRUNCATE users, audit_log, jobs RESTART IDENTITY CASCADE"))
        await connection.execute(
            text(
                "INSERT INTO users (id, username, email, password_hash) "
                "SELECT gen_random_uuid(), 'bench' || n, 'bench' || n || '@example.com', :hash "
                "FROM generate_series(1, :count) AS n"
            ),
            {"count": count, "hash": password_hash},
        )
        await connection.execute(
            text(
                "INSERT INTO jobs (kind, payload) "
                "SELECT 'email.welcome', jsonb_build_object('user_id', id::text, "
                "'message_id', '<bench-' || username || '@example.com>') FROM users"
            )
        )


async def inbox_count(client: httpx.AsyncClient) -> int:
    response = await client.get("/api/v2/messages", params={"limit": 1})
    return int(response.json()["total"])


async def drain_once(
    settings: Settings, inbox: httpx.AsyncClient, emails: int, password_hash: str
) -> tuple[float, list[float]]:
    """Seconds to drain, and each email's duplicate window (see `_windows`)."""
    context = AppContext.build(settings)
    try:
        await queue_backlog(context, emails, password_hash)
        await inbox.delete("/api/v1/messages")
        started = time.perf_counter()
        drained = await context.runner.drain()
        while await inbox_count(inbox) < emails:  # noqa: ASYNC110 (polling another process)
            await asyncio.sleep(0.01)
        elapsed = time.perf_counter() - started
        assert drained == emails, f"drained {drained} of {emails}"
        return elapsed, await _windows(context, inbox)
    finally:
        await context.close()


def _header(item: dict[str, Any], name: str) -> str:
    headers = item["Content"]["Headers"]
    return str(next(values[0] for key, values in headers.items() if key.lower() == name))


async def _windows(context: AppContext, inbox: httpx.AsyncClient) -> list[float]:
    """Per email, the time from the SMTP server storing it (its `Created`, just before its
    250 reply) to the start of the transaction that recorded it (`finished_at`): how long a
    kill -9 would have left it delivered but unrecorded, to be sent again."""
    stored = {
        _header(item, "message-id"): datetime.fromisoformat(item["Created"])
        for item in (await inbox.get("/api/v1/messages")).json()
    }
    async with context.engine.connect() as connection:
        rows = await connection.execute(
            text("SELECT payload->>'message_id', finished_at FROM jobs WHERE status = 'succeeded'")
        )
        return [(finished - stored[mid]).total_seconds() for mid, finished in rows if mid in stored]


@dataclass
class Run:
    seconds: list[float] = field(default_factory=list)
    connections: list[int] = field(default_factory=list)
    windows: list[float] = field(default_factory=list)


async def run(database_url: str, smtp_port: int, inbox_url: str, args: argparse.Namespace) -> str:
    base = Settings(
        _env_file=None,
        environment="development",
        database_url=database_url,
        job_batch_size=50,
        job_worker_enabled=False,
    )
    password_hash = await PasswordHasher().hash("bench password")
    runs = {(scenario, mode): Run() for scenario in SCENARIOS for mode in MODES}
    async with httpx.AsyncClient(base_url=inbox_url, timeout=30) as inbox:
        for round_number in range(1, args.rounds + 1):
            for scenario, delay in SCENARIOS.items():
                with SmtpProxy("127.0.0.1", smtp_port, one_way_delay=delay) as proxy:
                    for mode, (batch_size, concurrency, idle) in MODES.items():
                        settings = base.model_copy(
                            update={
                                "mail_port": proxy.port,
                                "mail_batch_size": batch_size,
                                "job_concurrency": concurrency,
                                "mail_connection_idle_seconds": idle,
                            }
                        )
                        proxy.reset_count()
                        seconds, windows = await drain_once(
                            settings, inbox, args.emails, password_hash
                        )
                        runs[scenario, mode].seconds.append(seconds)
                        runs[scenario, mode].windows.extend(windows)
                        runs[scenario, mode].connections.append(proxy.connections)
                        print(
                            f"round {round_number}  {scenario:<16} {mode:<28} {seconds:6.2f} s  "
                            f"{proxy.connections} connections",
                            flush=True,
                        )
    return _report(runs, args)


def _report(runs: dict[tuple[str, str], Run], args: argparse.Namespace) -> str:
    lines = [
        f"## Connection reuse: a backlog of {args.emails:,} welcome emails by mode and network",
        "",
        f"Median of {args.rounds} interleaved rounds. Timed from the first claim until the last "
        "message is in the inbox: claim, render, SMTP, record the outcome and the audit row. "
        "Connections are counted at the SMTP proxy.",
        "",
        "| network | mode | SMTP connections | rounds (s) | median (s) | emails/s |",
        "| --- | --- | ---: | --- | ---: | ---: |",
    ]
    for (scenario, mode), run in runs.items():
        median = statistics.median(run.seconds)
        lines.append(
            f"| {scenario} | {mode} | {max(run.connections):,} | "
            f"{', '.join(f'{r:.2f}' for r in run.seconds)} | {median:.2f} | "
            f"{args.emails / median:,.0f} |"
        )
    lines.append("")
    single, batched, parallel = MODES
    for scenario in SCENARIOS:
        base = statistics.median(runs[scenario, single].seconds)
        ratios = [
            base / statistics.median(runs[scenario, mode].seconds) for mode in (batched, parallel)
        ]
        lines.append(
            f"- {scenario}: against one connection per message, one reused connection drains "
            f"the backlog **{ratios[0]:.2f}x** as fast, and 4 at once **{ratios[1]:.2f}x**."
        )
    lines += [
        "",
        "## The duplicate window",
        "",
        "Each delivery is recorded as the relay accepts it. Per email, the time from the "
        "SMTP server storing it to the start of the transaction that records it: a kill -9 "
        "inside that window sends the email again (with the same Message-ID). All emails of "
        "all rounds.",
        "",
        "| network | mode | emails | p50 (ms) | p99 (ms) | max (ms) |",
        "| --- | --- | ---: | ---: | ---: | ---: |",
    ]
    for (scenario, mode), run in runs.items():
        ms = sorted(w * 1000 for w in run.windows)
        if ms:
            p50, p99 = ms[len(ms) // 2], ms[min(len(ms) - 1, int(len(ms) * 0.99))]
            lines.append(
                f"| {scenario} | {mode} | {len(ms):,} | {p50:.1f} | {p99:.1f} | {ms[-1]:.1f} |"
            )
    lines += [
        "",
        "Ratios of medians from the same run are the figures to compare; absolute times "
        "depend on the machine, which is shared and noisy. Per message, SMTP still needs "
        "MAIL, RCPT and DATA round trips; reuse saves the connect, greeting, EHLO and "
        "QUIT (and, on a real relay, the TLS handshake and AUTH, which this does not model).",
        "",
    ]
    return "\n".join(lines)
