"""Operator commands, run where the app runs (reads DATABASE_URL like the app):

python -m backend jobs [--status pending,running,failed] [--limit 50]
python -m backend jobs retry JOB_ID
python -m backend audit [--limit 20] [--action email.sent]
"""

import argparse
import asyncio
import json
import sys

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from backend.db import create_engine, create_sessionmaker
from backend.jobs import inspect, outbox
from backend.models import AuditLog
from backend.settings import get_settings


async def _jobs(session: AsyncSession, args: argparse.Namespace) -> int:
    if args.retry is not None:
        if await outbox.retry_failed(session, job_id=args.retry):
            print(f"job {args.retry} is pending again; a running app picks it up within seconds")
            return 0
        print(f"job {args.retry} is not a failed job", file=sys.stderr)
        return 1
    counts = await inspect.status_counts(session)
    print("  ".join(f"{status}: {count}" for status, count in counts.items()))
    rows = await inspect.list_jobs(session, statuses=args.status.split(","), limit=args.limit)
    if not rows:
        return 0
    print(f"\n{'id':>6}  {'kind':<14} {'status':<9} {'tries':>5}  {'next run / lease':<25} error")
    for row in rows:
        when = row.leased_until if row.status == "running" and row.leased_until else row.run_after
        error = (row.last_error or "").splitlines()[0][:80] if row.last_error else ""
        tries = f"{row.attempts}/{row.max_attempts}"
        print(
            f"{row.id:>6}  {row.kind:<14} {row.status:<9} {tries:>5}  "
            f"{when.isoformat(timespec='seconds'):<25} {error}"
        )
    return 0


async def _audit(session: AsyncSession, args: argparse.Namespace) -> int:
    query = select(AuditLog).order_by(AuditLog.id.desc()).limit(args.limit)
    if args.action:
        query = query.where(AuditLog.action == args.action)
    for row in reversed(list(await session.scalars(query))):
        print(
            f"{row.created_at.isoformat(timespec='seconds')}  {row.action:<20} "
            f"user={row.user_id}  job={row.job_id}  {json.dumps(row.details, sort_keys=True)}"
        )
    return 0


async def _run(args: argparse.Namespace) -> int:
    engine = create_engine(get_settings().database_url)
    try:
        async with create_sessionmaker(engine)() as session:
            exit_code: int = await args.command(session, args)
            return exit_code
    finally:
        await engine.dispose()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m backend",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(required=True)

    jobs = commands.add_parser("jobs", help="list background jobs, or retry a failed one")
    jobs.set_defaults(command=_jobs, retry=None)
    jobs.add_argument("--status", default="pending,running,failed")
    jobs.add_argument("--limit", type=int, default=50)
    jobs_actions = jobs.add_subparsers()
    retry = jobs_actions.add_parser("retry", help="give a failed job a fresh set of attempts")
    retry.add_argument("retry", type=int, metavar="JOB_ID")

    audit = commands.add_parser("audit", help="show the latest audit_log rows")
    audit.set_defaults(command=_audit)
    audit.add_argument("--limit", type=int, default=20)
    audit.add_argument("--action")

    return asyncio.run(_run(parser.parse_args(argv)))


if __name__ == "__main__":
    sys.exit(main())
