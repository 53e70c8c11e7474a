"""Carrying out jobs: right after a response (`run_now`), on a wake-up, and on a timer.

All paths go through the same claim → handle → record cycle, so a job that the fast
path could not finish (process killed, relay down) is finished later here or in another
process. Outcomes are recorded as each job settles, not at the end of its batch.
Nothing a handler does can stop the jobs beside it.
"""

import asyncio
import contextlib
import contextvars
import functools
import logging
from collections.abc import Awaitable, Coroutine, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from backend.jobs import claims, outbox
from backend.jobs.handlers import Failed, Handler
from backend.jobs.outbox import ClaimedJob
from backend.jobs.recorder import OutcomeRecorder
from backend.jobs.retention import Retention, RetentionTask, finished_jobs
from backend.jobs.wakeups import WakeupListener

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RunnerConfig:
    lease_seconds: float = 60.0
    poll_seconds: float = 2.0
    batch_size: int = 50
    retry_base_seconds: float = 2.0
    retry_cap_seconds: float = 600.0
    max_age_hours: float = 120.0
    shutdown_grace_seconds: float = 10.0
    retention_days: float = 14.0  # succeeded jobs
    failed_retention_days: float = 30.0  # failed and cancelled jobs
    concurrency: int = 4
    purge_every_seconds: float = 3600.0
    # The first round a random while after start-up: soon (not an hour later), but not
    # while the replicas of a deploy all start at once and warm up.
    purge_first_after_seconds: tuple[float, float] = (10.0, 60.0)
    purge_batch_size: int = 1000
    purge_pause_seconds: float = 0.2


class JobRunner:
    def __init__(
        self,
        *,
        sessionmaker: async_sessionmaker[AsyncSession],
        handlers: Mapping[str, Handler],
        config: RunnerConfig,
        record_sessionmaker: async_sessionmaker[AsyncSession] | None = None,
        wakeups: WakeupListener | None = None,
        retention_tasks: Sequence[RetentionTask] = (),
    ) -> None:
        self._sessionmaker = sessionmaker
        # The queue's own finished jobs first, then the features' rows (`context.py`).
        self._retention = Retention(
            sessionmaker,
            [
                finished_jobs("succeeded", older_than_days=config.retention_days),
                finished_jobs("failed", older_than_days=config.failed_retention_days),
                finished_jobs("cancelled", older_than_days=config.failed_retention_days),
                *retention_tasks,
            ],
            batch_size=config.purge_batch_size,
            pause_seconds=config.purge_pause_seconds,
        )
        self._handlers = dict(handlers)
        self._config = config
        self._recorder = OutcomeRecorder(
            sessionmaker=record_sessionmaker or sessionmaker,
            retry_delay=functools.partial(
                outbox.backoff_seconds,
                base=config.retry_base_seconds,
                cap=config.retry_cap_seconds,
            ),
            max_age_hours=config.max_age_hours,
        )
        self._inflight: set[asyncio.Task[int]] = set()
        self._poller: asyncio.Task[None] | None = None
        self._purger: asyncio.Task[None] | None = None
        self._stopping = asyncio.Event()
        self._wake = asyncio.Event()
        self._wakeups = wakeups

    # -- entry points -------------------------------------------------------------------

    async def run_now(self, job_ids: Sequence[int]) -> None:
        """BackgroundTasks entry: start these just-committed jobs and return at once.

        The work runs in its own task rather than in the request's: a keep-alive
        connection would otherwise wait for SMTP before serving its next request, and
        shutdown (`stop`), not the request, decides how long running work may take.
        """
        if job_ids and not self._stopping.is_set():
            self._track(self._logged(self._claim_and_run(ids=job_ids), job_ids))

    def wake(self) -> None:
        """Look for due work now rather than at the next poll (a handler became ready, or
        another process committed work). Wake-ups while a look is under way make one more."""
        self._wake.set()

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
            while not self._stopping.is_set() and (count := await self.run_due()):
                total += count
            return total

        return sum(await asyncio.gather(*(one_lane() for _ in range(self._config.concurrency))))

    def start(self) -> None:
        """Start the recovery loop: at once (work left by a stopped server), then on a timer
        or a wake-up (work committed by any process, when there is a listener)."""
        self._poller = asyncio.create_task(self._poll_forever(), name="job-poller")
        # A task of its own: a long first round (a backlog) must not hold up the claims.
        self._purger = asyncio.create_task(
            self._retention.run_forever(
                first_after=self._config.purge_first_after_seconds,
                every=self._config.purge_every_seconds,
            ),
            name="job-retention",
        )
        if self._wakeups is not None:
            self._wakeups.start(self.wake)

    async def stop(self) -> None:
        """Graceful shutdown: no new claims; running jobs get a grace period, then are
        interrupted: what they delivered is recorded, the rest released for the next start."""
        self._stopping.set()
        if self._wakeups is not None:
            await self._wakeups.stop()
        for loop in (self._poller, self._purger):
            if loop is not None:
                loop.cancel()  # a batch cut short is rolled back: nothing half-done
                await asyncio.gather(loop, return_exceptions=True)
        if self._inflight:
            _, pending = await asyncio.wait(
                self._inflight, timeout=self._config.shutdown_grace_seconds
            )
            for task in pending:
                task.cancel()
            if pending:
                log.warning("interrupted %d running job batch(es) at shutdown", len(pending))
                await asyncio.gather(*pending, return_exceptions=True)

    async def purge(self) -> int:
        """One retention round (see `jobs.retention`); returns how many rows it did."""
        return sum((await self._retention.run_round()).values())

    # -- the cycle ----------------------------------------------------------------------

    def _track(self, work: Coroutine[Any, Any, int]) -> asyncio.Task[int]:
        # A context of its own, not the request's that asked for it (run_now): a job's lines
        # carry the request id stored with that job (see `_run_batch` and the handlers).
        task = asyncio.get_running_loop().create_task(work, context=contextvars.Context())
        self._inflight.add(task)
        task.add_done_callback(self._inflight.discard)
        return task

    async def _logged(self, work: Awaitable[int], job_ids: Sequence[int]) -> int:
        try:
            return await work
        except Exception:
            log.exception("running jobs %s failed; the poller will pick them up", job_ids)
            return 0

    async def _poll_forever(self) -> None:
        while not self._stopping.is_set():
            self._wake.clear()
            try:
                if await self.run_due() == self._config.batch_size:
                    # A full batch means a backlog: drain it `concurrency` batches at a time
                    # (each over its own SMTP connection); idle, one cheap query per poll.
                    await self.drain()
            except Exception:
                log.exception("job poll failed; retrying in %ss", self._config.poll_seconds)
            # Nothing is due now (or the database is down): wait for a wake-up or the timer.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self._config.poll_seconds)

    async def _claim_and_run(self, *, ids: Sequence[int] | None) -> int:
        if self._stopping.is_set():
            return 0
        async with self._sessionmaker() as session:
            claimed = await claims.claim(
                session,
                lease_seconds=self._config.lease_seconds,
                limit=len(ids) if ids is not None else self._config.batch_size,
                known_kinds=list(self._handlers),
                ready_kinds=[kind for kind, h in self._handlers.items() if h.ready()],
                max_age_seconds=self._config.max_age_hours * 3600,
                ids=ids,
            )
        if claimed:
            by_kind: dict[str, list[ClaimedJob]] = {}
            for job in claimed:
                by_kind.setdefault(job.kind, []).append(job)
            # Kinds run side by side: a slow SMTP server must not hold up the audit rows.
            await asyncio.gather(*(self._run_batch(kind, jobs) for kind, jobs in by_kind.items()))
        return len(claimed)

    async def _run_batch(self, kind: str, jobs: list[ClaimedJob]) -> None:
        handler = self._handlers[kind]
        unsettled = {job.id: job for job in jobs}
        lost = asyncio.Event()
        heartbeat = asyncio.create_task(self._heartbeat(unsettled, lost))
        recording: asyncio.Task[None] | None = None
        try:
            for job in [job for job in jobs if job.expired]:
                await self._settle(unsettled, job, Failed(error=job.last_error or "never sent"))
            runnable = [job for job in jobs if not job.expired]
            if not runnable:
                return
            async with contextlib.aclosing(handler.run(runnable)) as stream:
                try:
                    async for job, outcome in stream:
                        # Off the heartbeat's list first: a recorded job is no longer leased.
                        unsettled.pop(job.id, None)
                        recording = asyncio.ensure_future(
                            self._recorder.record(job, outcome, handler)
                        )
                        # Shielded: an interrupted batch still records what it delivered.
                        await asyncio.shield(recording)
                        recording = None
                        if lost.is_set():
                            log.warning("lost the lease of a %s batch; it stops sending", kind)
                            break
                except Exception as exc:
                    log.exception("the %s handler raised", kind)
                    error = Failed(error=f"{type(exc).__name__}: {exc}")
                    for job in list(unsettled.values()):
                        await self._settle(unsettled, job, error)
            if lost.is_set():
                # Fenced: only the jobs still ours go back to the queue.
                await self._release(list(unsettled.values()))
                return
            for job in list(unsettled.values()):
                await self._settle(unsettled, job, Failed(error="the handler gave no outcome"))
        except asyncio.CancelledError:
            if recording is not None:
                with contextlib.suppress(Exception):
                    await recording
            await asyncio.shield(self._release(list(unsettled.values())))
            raise
        finally:
            heartbeat.cancel()

    async def _settle(
        self, unsettled: dict[int, ClaimedJob], job: ClaimedJob, outcome: Failed
    ) -> None:
        await self._recorder.record(job, outcome, self._handlers.get(job.kind))
        unsettled.pop(job.id, None)

    async def _heartbeat(self, unsettled: dict[int, ClaimedJob], lost: asyncio.Event) -> None:
        interval = self._config.lease_seconds / 3
        while True:
            await asyncio.sleep(interval)
            jobs = list(unsettled.values())
            try:
                async with self._sessionmaker() as session:
                    ours = await outbox.extend_leases(
                        session, jobs=jobs, lease_seconds=self._config.lease_seconds
                    )
            except Exception:
                log.exception("lease heartbeat failed")
                continue
            if any(job.id not in ours and job.id in unsettled for job in jobs):
                lost.set()
                return

    async def _release(self, jobs: Sequence[ClaimedJob]) -> None:
        try:
            async with self._sessionmaker() as session:
                await outbox.release(session, jobs)
        except Exception:
            log.exception("could not release interrupted jobs; their leases will expire")
