"""Operator commands, run where the app runs (reads DATABASE_URL like the app):

python -m backend jobs [--status pending,running,failed] [--limit 50]
python -m backend jobs retry JOB_ID
python -m backend jobs retry --status failed [--kind email.welcome] [--since 2026-11-24T08:00]
python -m backend jobs cancel JOB_ID
python -m backend jobs cancel --status pending [--kind email.welcome]
python -m backend audit [--limit 20] [--action email.sent]
python -m backend suppressions list [--limit 100]
python -m backend suppressions remove ADDRESS

Reads only DATABASE_URL (environment or `.env`), like Alembic: no SECRET_KEY needed.
"""

import argparse
import asyncio
import getpass
import json
import sys
from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from backend.accounts import suppressions
from backend.audit.service import record_job_actions
from backend.db import create_engine, create_sessionmaker
from backend.jobs import admin
from backend.log_config import configure_logging
from backend.mail.relay import recorded_states
from backend.mail.suppressions import count_suppressions, list_suppressions
from backend.models import AuditLog, Job
from backend.settings import DatabaseSettings


async def _jobs(session: AsyncSession, args: argparse.Namespace) -> int:
    for relay in await recorded_states(session):
        since = relay.since.isoformat(timespec="seconds")
        error = f": {relay.last_error}" if relay.last_error and relay.state != "available" else ""
        print(f"mail relay {relay.relay}: {relay.state} since {since}{error}")
    counts = await admin.status_counts(session)
    counts[f"succeeded (last {admin.SUCCEEDED_WINDOW})"] = counts.pop("succeeded")
    print("  ".join(f"{status}: {count}" for status, count in counts.items()))
    rows = await admin.list_jobs(session, statuses=args.status.split(","), limit=args.limit)
    if not rows:
        return 0
    print(f"\n{'id':>6}  {'kind':<14} {'status':<9} {'tries':>5}  {'next run / lease':<25} error")
    for row in rows:
        when = row.leased_until if row.status == "running" and row.leased_until else row.run_after
        error = (row.last_error or "").splitlines()[0][:80] if row.last_error else ""
        print(
            f"{row.id:>6}  {row.kind:<14} {row.status:<9} {row.attempts:>5}  "
            f"{when.isoformat(timespec='seconds'):<25} {error}"
        )
    return 0


async def _retry(session: AsyncSession, args: argparse.Namespace) -> int:
    if args.job_id is None and args.status is None:
        print("name a JOB_ID, or choose jobs with --status (and --kind, --since)", file=sys.stderr)
        return 2
    retried = await admin.retry(
        session,
        by=getpass.getuser(),
        record=record_job_actions,
        job_id=args.job_id,
        statuses=[args.status or "failed"],
        kind=args.kind,
        since=args.since,
    )
    await session.commit()
    if not retried:
        print("no job matched; nothing was retried", file=sys.stderr)
        return 1
    print(
        f"{len(retried)} job(s) pending again ({_ids(retried)}); "
        "a running app picks them up at once"
    )
    return 0


async def _cancel(session: AsyncSession, args: argparse.Namespace) -> int:
    if args.job_id is None and args.status is None:
        print("name a JOB_ID, or choose jobs with --status (and --kind)", file=sys.stderr)
        return 2
    statuses = [args.status] if args.status else list(admin.CANCELLABLE)
    cancelled = await admin.cancel(
        session,
        by=getpass.getuser(),
        record=record_job_actions,
        job_id=args.job_id,
        statuses=statuses,
        kind=args.kind,
    )
    await session.commit()
    if not cancelled:
        print("no pending or failed job matched; nothing was cancelled", file=sys.stderr)
        return 1
    print(f"{len(cancelled)} job(s) cancelled ({_ids(cancelled)}); they will not run")
    return 0


def _ids(jobs: list[Job]) -> str:
    return ", ".join(str(job.id) for job in jobs[:20]) + (" …" if len(jobs) > 20 else "")


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


async def _suppressions(session: AsyncSession, args: argparse.Namespace) -> int:
    entries = await list_suppressions(session, limit=args.limit)
    total = await count_suppressions(session)
    print(f"{total} suppressed address(es); no email to them is attempted")
    if entries:
        width = max(len(entry.address) for entry in entries)
        print(f"\n{'address':<{width}}  {'since':<25} reason")
    for entry in entries:
        since = entry.created_at.isoformat(timespec="seconds")
        print(f"{entry.address:<{width}}  {since:<25} {entry.reason}")
    return 0


async def _lift(session: AsyncSession, args: argparse.Namespace) -> int:
    removed = await suppressions.lift(session, address=args.address, by="cli")
    await session.commit()
    if removed is None:
        print(
            f"{args.address} is not on the suppression list; nothing was removed", file=sys.stderr
        )
        return 1
    print(f"{removed.address} removed from the suppression list; the next email to it is sent")
    return 0


async def _run(args: argparse.Namespace) -> int:
    # Only the database: an operator's command needs no SECRET_KEY (see DatabaseSettings).
    engine = create_engine(DatabaseSettings().database_url)
    try:
        async with create_sessionmaker(engine)() as session:
            exit_code: int = await args.command(session, args)
            return exit_code
    finally:
        await engine.dispose()


def _timestamp(value: str) -> datetime:
    moment = datetime.fromisoformat(value)
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m backend",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(required=True)

    jobs = commands.add_parser("jobs", help="the relay's state and the background jobs")
    jobs.set_defaults(command=_jobs)
    jobs.add_argument("--status", default="pending,running,failed")
    jobs.add_argument("--limit", type=int, default=50)
    jobs_actions = jobs.add_subparsers()
    retry = jobs_actions.add_parser(
        "retry", help="make failed (or pending) jobs due now, with a fresh give-up age; audited"
    )
    retry.set_defaults(command=_retry)
    retry.add_argument("job_id", type=int, nargs="?", metavar="JOB_ID")
    retry.add_argument("--status", choices=["failed", "pending"])
    retry.add_argument("--kind", help="only jobs of this kind, e.g. email.welcome")
    retry.add_argument(
        "--since", type=_timestamp, help="only jobs created at or after this ISO time (UTC)"
    )

    cancel = jobs_actions.add_parser(
        "cancel", help="stop pending (or failed) jobs for good: they never run; audited"
    )
    cancel.set_defaults(command=_cancel)
    cancel.add_argument("job_id", type=int, nargs="?", metavar="JOB_ID")
    cancel.add_argument("--status", choices=list(admin.CANCELLABLE))
    cancel.add_argument("--kind", help="only jobs of this kind, e.g. email.welcome")

    audit = commands.add_parser("audit", help="show the latest audit_log rows")
    audit.set_defaults(command=_audit)
    audit.add_argument("--limit", type=int, default=20)
    audit.add_argument("--action")

    listing = commands.add_parser(
        "suppressions", help="addresses the relay refused for good: no email to them is sent"
    )
    listing.set_defaults(command=_suppressions, limit=100)
    listing_actions = listing.add_subparsers()
    listed = listing_actions.add_parser("list", help="the newest first (the default)")
    listed.add_argument("--limit", type=int, default=100)
    remove = listing_actions.add_parser(
        "remove", help="lift an address: emails to it are attempted again; audited"
    )
    remove.set_defaults(command=_lift)
    remove.add_argument("address", metavar="ADDRESS")

    args = parser.parse_args(argv)
    # Its output is for a person at a terminal; a warning from below gets a time and level.
    configure_logging("WARNING", log_format="text")
    return asyncio.run(_run(args))


if __name__ == "__main__":
    sys.exit(main())
