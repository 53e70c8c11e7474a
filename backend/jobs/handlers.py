"""What a job handler is: the contract between the queue and the features that use it.

The queue knows no job kind. A feature (the welcome email, the audit entry) registers a
handler for its kind. The handler takes a batch of claimed jobs of that kind, performs
their effects, and yields each job's outcome as soon as it is known: the runner records
it at once (fenced by the lease), so a crash re-runs only what was not yet recorded.
"""

from collections.abc import AsyncGenerator, Callable, Sequence
from dataclasses import dataclass
from typing import Protocol, Self

from sqlalchemy.ext.asyncio import AsyncSession

from backend.jobs.outbox import ClaimedJob


class Rows(Protocol):
    """What a handler wants written in the transaction that records a job's outcome (its
    audit row). The rows of one type settled in one commit are written together: one
    statement, whether one job settled or forty."""

    @classmethod
    async def write_all(cls, session: AsyncSession, rows: Sequence[Self]) -> None: ...


@dataclass(frozen=True)
class Done:
    """The effect happened; `rows` (if any) are written in the transaction that records it."""

    rows: Rows | None = None


@dataclass(frozen=True)
class Failed:
    """The effect did not happen through this job's own fault. Retried with backoff until
    the job is too old, or given up at once when permanent.

    `rows` (if any) are written in the transaction that records the failure, and
    `recorded` is called once that transaction has committed (a metric), both only when
    the outcome counted: a worker that lost the job's lease does neither. A permanent
    failure with `attempted=False` tried nothing (its effect was known to be refused
    beforehand): the attempt is not counted."""

    error: str
    permanent: bool = False
    rows: Rows | None = None
    recorded: Callable[[], None] | None = None
    attempted: bool = True


@dataclass(frozen=True)
class Held:
    """Not this job's fault: what it needs (the mail relay) is unavailable. The job goes
    back untouched (the attempt is not counted) and waits until its handler is ready."""

    reason: str


Outcome = Done | Failed | Held


class Handler(Protocol):
    def run(self, jobs: Sequence[ClaimedJob]) -> AsyncGenerator[tuple[ClaimedJob, Outcome], None]:
        """Perform the jobs' effects, yielding `(job, outcome)` as each one is settled.

        The runner records an outcome before it asks for the next one, and stops asking
        when it has lost its lease. One job's bad data must fail that job alone.

        Only the handler knows which job it is working on: it binds `job.log_context()`
        (`observability.request_context.scope`) around the work and the lines of one job,
        never across a `yield`, so that they carry that job and its request's id."""
        ...

    async def on_give_up(self, session: AsyncSession, job: ClaimedJob, error: str) -> None:
        """Write what a give-up leaves behind (an audit row), in the transaction that parks
        the job, however that happens. If it raises, the job is parked all the same."""
        ...

    def ready(self) -> bool:
        """False while what this kind needs is known to be unavailable: its jobs are then
        left in the queue instead of being claimed and held again and again."""
        ...
