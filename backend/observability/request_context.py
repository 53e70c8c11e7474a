"""Who a log line is about: the request being served, or the job being run.

One context variable holds both, so that a job's lines carry the id of the request that
queued it. The web middleware binds the request id for the time of a request; the job
runner (and the mail sender, for each message) binds a job's context while working on it.
The logging filter (`log_config`) reads it for every line, and `jobs.outbox.enqueue`
stores the request id with every job a request creates.

Setting it costs one `ContextVar.set` (tens of nanoseconds): cheap enough per email.
"""

import contextlib
from collections.abc import Iterator
from contextvars import ContextVar, Token
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class LogContext:
    request_id: str | None = None
    job_id: int | None = None
    job_kind: str | None = None


_current: ContextVar[LogContext | None] = ContextVar("log_context", default=None)


def current() -> LogContext | None:
    return _current.get()


def current_request_id() -> str | None:
    """The id of the request (or of the request behind the job) being worked on, if any."""
    context = _current.get()
    return context.request_id if context is not None else None


def bind(context: LogContext | None) -> Token[LogContext | None]:
    """Make `context` current until `unbind` (for code that cannot use `scope`)."""
    return _current.set(context)


def unbind(token: Token[LogContext | None]) -> None:
    _current.reset(token)


@contextlib.contextmanager
def scope(context: LogContext | None) -> Iterator[None]:
    """`context` is current inside the block, whatever was current before.

    Never hold it across a `yield` of an async generator: the generator's consumer would
    run with the job's context, and the reset could happen in another task."""
    token = _current.set(context)
    try:
        yield
    finally:
        _current.reset(token)
