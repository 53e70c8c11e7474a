"""Carrying out jobs: right after a response (`run_now`) and on a timer (`start`).

Both paths go through the same claim → handle → record cycle, so a job that the
fast path could not finish (process killed, SMTP down) is finished by the timer
here or in another process. Every unit runs in its own session and its own error
handling: nothing a handler does can stop the jobs beside it.
"""

import asyncio
import contextlib
import logging
import time
from collections import defaultdict
from collections.abc import Awaitable, Mapping, Sequence
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from backend.audit.service import record_many as record_audit_many
from backend.jobs import outbox
from backend.jobs.handlers import Done, Failed, Handler, Outcome
from backend.jobs.outbox import ClaimedJob

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RunnerConfig:
    lease_seconds: float = 60.0
    poll_seconds: float = 2.0
    batch_size: int = 50
    retry_base_seconds: float = 2.0
    retry_cap_seconds: float = 600.0
    shutdown_grace_seconds: float = 10.0
    retention_days: float = 14.0
    concurrency: int = 4
    purge_every_seconds: float = 3600.0


class JobRunner:
    def __init__(
        self,
        *,
        sessionmaker: async_sessionmaker[AsyncSession],
        handlers: Mapping[str, Handler],
        config: RunnerConfig,
    ) -> None:
        self._sessionmaker = sessionmaker
        self._handlers = dict(handlers)
        self._config = config
        self._inflight: set[asyncio.Task[int]] = set()
        self._poller: asyncio.Task[None] | None = None
        self._stopping = asyncio.Event()

    # -- entry points -------------------------------------------------------------------

    async def run_now(self, job_ids: Sequence[int]) -> None:
        """BackgroundTasks entry: start these just-committed jobs and return at once.

        The work runs in its own task rather than in the request's: a keep-alive
        connection would otherwise wait for SMTP before serving its next request, and
        shutdown (`stop`), not the request, decides how long running work may take.
        """
        if job_ids and not self._stopping.is_set():
            self._track(self._logged(self._claim_and_run(ids=job_ids), job_ids))

    async def wait_idle(self) -> None:
        """Wait until the work started so far has finished (tests, benchmarks)."""
        while self._inflight:
            await asyncio.wait(list(self._inflight))

    async def run_due(self) -> int:
        """Claim and run one batch of due (or lease-expired) jobs; returns how many ran.

        Shielded: cancelling the caller (the poller, at shutdown) must not cut the batch
        short; `stop` gives it its grace period like any other running work.
        """
        return await asyncio.shield(self._track(self._claim_and_run(ids=None)))

    async def drain(self) -> int:
        """Run batches until nothing is due, `concurrency` at a time (a backlog, tests, bench)."""

        async def one_lane() -> int:
            total = 0
            while count := await self.run_due():
                total += count
            return total

        return sum(await asyncio.gather(*(one_lane() for _ in range(self._config.concurrency))))

    def start(self) -> None:
        """Start the recovery loop: at once (work left by a stopped server), then on a timer."""
        self._poller = asyncio.create_task(self._poll_forever(), name="job-poller")

    async def stop(self) -> None:
        """Graceful shutdown: no new claims; running jobs get a grace period, then are
        interrupted and released, so the next start picks them up. Nothing interrupted
        is marked done."""
        self._stopping.set()
        if self._poller is not None:
            self._poller.cancel()
            await asyncio.gather(self._poller, return_exceptions=True)
        if self._inflight:
            _, pending = await asyncio.wait(
                self._inflight, timeout=self._config.shutdown_grace_seconds
            )
            for task in pending:
                task.cancel()
            if pending:
                log.warning("interrupted %d running job batch(es) at shutdown", len(pending))
                await asyncio.gather(*pending, return_exceptions=True)

    # -- the cycle ----------------------------------------------------------------------

    def _track(self, work: Awaitable[int]) -> asyncio.Task[int]:
        task: asyncio.Task[int] = asyncio.ensure_future(work)
        self._inflight.add(task)
        task.add_done_callback(self._inflight.discard)
        return task

    async def _logged(self, work: Awaitable[int], job_ids: Sequence[int]) -> int:
        try:
            return await work
        except Exception:
            log.exception("running jobs %s failed; the poller will pick them up", job_ids)
            return 0

    async def purge(self) -> int:
        """Delete old succeeded jobs (see `outbox.purge_succeeded`); returns how many."""
        async with self._sessionmaker() as session:
            purged = await outbox.purge_succeeded(
                session, older_than_days=self._config.retention_days
            )
        if purged:
            log.info(
                "purged %d succeeded jobs older than %s days", purged, self._config.retention_days
            )
        return purged

    async def _poll_forever(self) -> None:
        next_purge = 0.0
        while not self._stopping.is_set():
            try:
                if time.monotonic() >= next_purge:
                    next_purge = time.monotonic() + self._config.purge_every_seconds
                    await self.purge()
                if await self.run_due() == self._config.batch_size:
                    # A full batch means a backlog: drain it `concurrency` batches at a time
                    # (each over its own SMTP connection); idle, one cheap query per poll.
                    await self.drain()
            except Exception:
                log.exception("job poll failed; retrying in %ss", self._config.poll_seconds)
            # Nothing is due now (or the database is down): wait for the next poll.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), self._config.poll_seconds)

    async def _claim_and_run(self, *, ids: Sequence[int] | None) -> int:
        async with self._sessionmaker() as session:
            claimed = await outbox.claim(
                session,
                lease_seconds=self._config.lease_seconds,
                limit=len(ids) if ids is not None else self._config.batch_size,
                ids=ids,
            )
        if claimed:
            await self._run_claimed(claimed)
        return len(claimed)

    async def _run_claimed(self, claimed: Sequence[ClaimedJob]) -> None:
        heartbeat = asyncio.create_task(self._heartbeat(claimed))
        try:
            by_kind: dict[str, list[ClaimedJob]] = defaultdict(list)
            for job in claimed:
                by_kind[job.kind].append(job)
            # Kinds run side by side: a slow SMTP server must not hold up the audit rows.
            await asyncio.gather(*(self._run_kind(kind, jobs) for kind, jobs in by_kind.items()))
        except asyncio.CancelledError:
            await asyncio.shield(self._release_unfinished(claimed))
            raise
        finally:
            heartbeat.cancel()

    async def _run_kind(self, kind: str, jobs: list[ClaimedJob]) -> None:
        runnable = [job for job in jobs if job.attempts <= job.max_attempts]
        handler = self._handlers.get(kind)
        for job in jobs:
            if job.attempts > job.max_attempts:
                # Claimed again after its lease ran out on the last attempt (its worker died
                # mid-run each time): stop here rather than loop forever.
                await self._record(job, Failed(error="lease expired on the last attempt"), handler)
        outcomes: Sequence[Outcome]
        if handler is None:
            outcomes = [Failed(error=f"no handler for job kind {kind!r}", permanent=True)] * len(
                runnable
            )
        elif runnable:
            try:
                outcomes = await handler(runnable)
            except Exception as exc:
                log.exception("handler for %s raised", kind)
                outcomes = [Failed(error=f"{type(exc).__name__}: {exc}")] * len(runnable)
        else:
            outcomes = []
        results = list(zip(runnable, outcomes, strict=True))
        await self._record_done([(job, o) for job, o in results if isinstance(o, Done)])
        for job, outcome in results:
            if isinstance(outcome, Failed):
                await self._record(job, outcome, handler)

    async def _record_done(self, done: Sequence[tuple[ClaimedJob, Done]]) -> None:
        """A batch's successes in one transaction: a backlog isn't a commit per email."""
        if not done:
            return
        try:
            async with self._sessionmaker() as session, session.begin():
                await _finish(session, done)
        except Exception:
            log.exception("recording %d finished jobs failed; recording them one by one", len(done))
            for job, outcome in done:
                await self._record(job, outcome)

    async def _record(
        self, job: ClaimedJob, outcome: Outcome, handler: Handler | None = None
    ) -> None:
        """Store one job's outcome and its audit rows in one transaction. Never raises."""
        try:
            async with self._sessionmaker() as session, session.begin():
                await self._record_in(session, job, outcome, handler)
        except Exception:
            # The lease will run out and the job will be run again: at least once.
            log.exception("could not record the outcome of job %s", job.id)

    async def _record_in(
        self, session: AsyncSession, job: ClaimedJob, outcome: Outcome, handler: Handler | None
    ) -> None:
        if isinstance(outcome, Done):
            await _finish(session, [(job, outcome)])
            return
        gives_up = outcome.permanent or job.attempts >= job.max_attempts
        if gives_up:
            if await outbox.mark_failed(session, job, error=outcome.error):
                entries = handler.on_give_up(job, outcome.error) if handler else ()
                await record_audit_many(session, [(job.id, entry) for entry in entries])
                log.error("job %s (%s) failed for good: %s", job.id, job.kind, outcome.error)
            return
        delay = outbox.backoff_seconds(
            job.attempts, base=self._config.retry_base_seconds, cap=self._config.retry_cap_seconds
        )
        await outbox.mark_for_retry(session, job, error=outcome.error, delay_seconds=delay)
        log.warning(
            "job %s (%s) attempt %d/%d failed, retry in %.1fs: %s",
            *(job.id, job.kind, job.attempts, job.max_attempts, delay, outcome.error),
        )

    async def _heartbeat(self, jobs: Sequence[ClaimedJob]) -> None:
        interval = self._config.lease_seconds / 3
        while True:
            await asyncio.sleep(interval)
            try:
                async with self._sessionmaker() as session:
                    await outbox.extend_leases(
                        session, jobs=jobs, lease_seconds=self._config.lease_seconds
                    )
            except Exception:
                log.exception("lease heartbeat failed")

    async def _release_unfinished(self, jobs: Sequence[ClaimedJob]) -> None:
        try:
            async with self._sessionmaker() as session:
                await outbox.release(session, jobs)
        except Exception:
            log.exception("could not release interrupted jobs; their leases will expire")


async def _finish(session: AsyncSession, done: Sequence[tuple[ClaimedJob, Done]]) -> None:
    ours = await outbox.mark_succeeded(session, [job for job, _ in done])
    for job, _ in done:
        if job.id not in ours:
            log.warning("job %s finished after its lease was taken over", job.id)
    entries = [
        (job.id, entry) for job, outcome in done if job.id in ours for entry in outcome.audit
    ]
    await record_audit_many(session, entries)
