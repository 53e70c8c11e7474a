"""Recording outcomes the moment they happen, several in one commit.

A handler yields each job's outcome as soon as it is known, and waits for it to be
recorded before it goes on (so a crash re-runs at most the one job in flight per
batch). Outcomes that arrive while a commit is under way wait for the next one: with
several batches running, one commit carries what all of them settled in the last
millisecond or so, instead of a commit each.

Each outcome is written under its job's lease: a worker that lost the lease writes
nothing, and the handler's rows (audit, a suppressed address) are written only with an
outcome that counted.
"""

import asyncio
import contextvars
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from backend.jobs import outbox
from backend.jobs.handlers import Done, Failed, Handler, Held, Outcome, Rows
from backend.jobs.outbox import ClaimedJob
from backend.observability import metrics
from backend.observability.request_context import scope

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class _Pending:
    job: ClaimedJob
    outcome: Outcome
    handler: Handler | None
    settled: asyncio.Future[None]


class OutcomeRecorder:
    def __init__(
        self,
        *,
        sessionmaker: async_sessionmaker[AsyncSession],
        retry_delay: Callable[[int], float],
        max_age_hours: float,
    ) -> None:
        self._sessionmaker = sessionmaker
        self._retry_delay = retry_delay
        self._max_age_hours = max_age_hours
        self._queue: list[_Pending] = []
        self._flusher: asyncio.Task[None] | None = None

    async def record(self, job: ClaimedJob, outcome: Outcome, handler: Handler | None) -> None:
        """Return once the outcome is committed (or could not be: the lease then runs out and
        the job runs again). Never raises for a database problem."""
        settled = asyncio.get_running_loop().create_future()
        self._queue.append(_Pending(job, outcome, handler, settled))
        if self._flusher is None or self._flusher.done():
            # Not the context of whichever job came first: each line below binds its own.
            self._flusher = asyncio.get_running_loop().create_task(
                self._flush(), context=contextvars.Context()
            )
        await settled

    async def _flush(self) -> None:
        while self._queue:
            group, self._queue = self._queue, []
            try:
                await self._commit(group)
            except Exception:
                log.exception("recording %d outcomes together failed; one by one now", len(group))
                for item in group:
                    with scope(item.job.log_context()):
                        try:
                            await self._commit([item])
                        except Exception:
                            # The lease will run out and the job will run again: at least once.
                            log.exception("could not record the outcome of job %s", item.job.id)
            for item in group:
                if not item.settled.done():
                    item.settled.set_result(None)

    async def _commit(self, group: Sequence[_Pending]) -> None:
        # The sessions come from the recorder's own connection (`db.create_recorder_engine`),
        # opened with synchronous_commit off: a commit does not wait for its WAL flush. A
        # crash of this process loses nothing (Postgres has the commit); only a crash of
        # Postgres itself can lose the last fraction of a second of outcomes, and a lost
        # outcome means the job runs again: a duplicate email, never a lost one. In exchange
        # a delivery's record costs no disk flush, so the duplicate window and the drain
        # stay short.
        finished: list[tuple[str, metrics.JobOutcome]] = []
        recorded: list[Callable[[], None]] = []
        async with self._sessionmaker() as session, session.begin():
            done = [item for item in group if isinstance(item.outcome, Done)]
            ours = await outbox.mark_succeeded(session, [item.job for item in done])
            finished += [(item.job.kind, "succeeded") for item in done if item.job.id in ours]
            rows_by_type: dict[type[Rows], list[Rows]] = {}
            for item in done:
                assert isinstance(item.outcome, Done)
                if item.job.id not in ours:
                    with scope(item.job.log_context()):
                        log.warning("job %s finished after its lease was taken over", item.job.id)
                elif (rows := item.outcome.rows) is not None:
                    rows_by_type.setdefault(type(rows), []).append(rows)
            for rows_type, rows_of_type in rows_by_type.items():
                await rows_type.write_all(session, rows_of_type)
            failed_rows: dict[type[Rows], list[Rows]] = {}
            for item in group:
                if isinstance(item.outcome, Held):
                    await outbox.hold(session, item.job, reason=item.outcome.reason)
                elif isinstance(item.outcome, Failed):
                    # The retry and give-up lines are the job's own.
                    with scope(item.job.log_context()):
                        failed = await self._failed(session, item.job, item.outcome, item.handler)
                    if failed is None:
                        continue
                    finished.append((item.job.kind, failed))
                    if (rows := item.outcome.rows) is not None:
                        failed_rows.setdefault(type(rows), []).append(rows)
                    if item.outcome.recorded is not None:
                        recorded.append(item.outcome.recorded)
            for rows_type, rows_of_type in failed_rows.items():
                await rows_type.write_all(session, rows_of_type)
        # Counted once committed: an outcome rolled back is run, and counted, again.
        for kind, outcome in finished:
            metrics.job_finished(kind, outcome)
        for callback in recorded:
            try:
                callback()
            except Exception:  # committed already: recording it again would be wrong
                log.exception("a callback after recording outcomes raised")

    async def _failed(
        self, session: AsyncSession, job: ClaimedJob, outcome: Failed, handler: Handler | None
    ) -> metrics.JobOutcome | None:
        """Retried or parked; None when the lease was lost (the job is someone else's)."""
        if not (outcome.permanent or job.expired):
            delay = self._retry_delay(job.attempts)
            if await outbox.mark_for_retry(session, job, error=outcome.error, delay_seconds=delay):
                log.warning(
                    "job %s (%s) attempt %d failed, retry in %.1fs: %s",
                    *(job.id, job.kind, job.attempts, delay, outcome.error),
                )
                return "retried"
            return None
        parked = await self.give_up(
            session, job, outcome.error, handler, attempted=outcome.attempted
        )
        return "failed" if parked else None

    async def give_up(
        self,
        session: AsyncSession,
        job: ClaimedJob,
        error: str,
        handler: Handler | None,
        *,
        attempted: bool = True,
    ) -> bool:
        """Park the job for good; False when the lease was lost."""
        if job.expired and not error.startswith("gave up"):
            error = f"gave up after {self._max_age_hours:g} hours in the queue; last error: {error}"
        if not await outbox.mark_failed(session, job, error=error, attempted=attempted):
            return False
        log.error("job %s (%s) failed for good: %s", job.id, job.kind, error)
        if handler is None:
            return True
        try:
            # A savepoint: a give-up hook that raises must not undo the parking (the job
            # would be claimed and given up again, forever).
            async with session.begin_nested():
                await handler.on_give_up(session, job, error)
        except Exception:
            log.exception("the give-up hook of job %s (%s) raised", job.id, job.kind)
        return True
