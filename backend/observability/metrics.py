"""The app's Prometheus metrics: what the code records, and the text `GET /metrics` serves.

Every process counts in files of its own (prometheus_client's multiprocess mode; where
they live: `metrics_dir`), and a scrape adds up all the files of its server, so any
worker answers for all of them. Gauges say how they combine across workers: `livesum`
(the files of a dead worker are dropped at the next scrape). The queue's figures are not
counted by anyone: they are read from the database at scrape time (`QueueSnapshot`, read
by `backend.jobs.stats`) and served as they are, never summed over workers.

No label carries an address, a username, an id or an error message: every label value
comes from a fixed set (the channels, the outcomes, the job kinds, the fault classes, the
relay's states), so the series stay few and the page tells nothing about anyone.
"""

from backend.observability import metrics_dir

# isort: split
import contextlib
import functools
import os
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Literal

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client import values as prometheus_values
from prometheus_client.core import REGISTRY, GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead
from prometheus_client.registry import Collector

PREFIX = "welcome_mail"
# The Prometheus text format generate_latest writes (prometheus_client's own
# CONTENT_TYPE_LATEST has moved on to 1.0.0, with escaping rules that format does not use).
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

# False only when something imported prometheus_client before metrics_dir could set the
# directory: this process's metrics are then its own, served from its own registry.
MULTIPROCESS = bool(getattr(prometheus_values.ValueClass, "_multiprocess", False))

Channel = Literal["form", "api"]
RegistrationOutcome = Literal[
    "created",  # a user was created and its welcome email queued
    "owner_notified",  # enumeration-safe mode: a taken email answered as new, its owner told
    "conflict",  # 409: username or email taken
    "invalid",  # 422: the fields did not validate
    "undeliverable",  # 422: an address our relay could never deliver to
    "rate_limited",  # 429: REGISTER_RATE_LIMIT
    "overloaded",  # 503: the password hashers and their queue were full
    "csrf_refused",  # 403 (form only): the form's CSRF token was missing or stale
    "error",  # anything raised past the service (e.g. the database unavailable: 503)
]
CHANNELS: tuple[Channel, ...] = ("form", "api")
REGISTRATION_OUTCOMES: tuple[RegistrationOutcome, ...] = (
    "created",
    "owner_notified",
    "conflict",
    "invalid",
    "undeliverable",
    "rate_limited",
    "overloaded",
    "csrf_refused",
    "error",
)
SmtpOperation = Literal["send", "probe"]
JobOutcome = Literal["succeeded", "retried", "failed"]

REGISTRATIONS = Counter(
    f"{PREFIX}_registrations",
    "Registration attempts by channel and outcome.",
    ["channel", "outcome"],
)
# From 10 ms (a relay on the same host) to a day (a long outage: JOB_MAX_AGE_HOURS is 5 days).
DELIVERY_BUCKETS = (
    *(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0),
    *(60.0, 300.0, 900.0, 1800.0, 3600.0, 3 * 3600.0, 6 * 3600.0, 12 * 3600.0, 86400.0),
)
EMAIL_DELIVERY = Histogram(
    f"{PREFIX}_email_delivery_seconds",
    "From the email's job being queued (or retried by an operator) to the relay's 250.",
    ["kind"],
    buckets=DELIVERY_BUCKETS,
)
SMTP_FAILURES = Counter(
    f"{PREFIX}_smtp_failures",
    "SMTP exchanges that failed, by fault class (backend/mail/faults.py) and by operation "
    "(send: a delivery or its connection; probe: the check while the relay is away).",
    ["fault", "operation"],
)
RELAY_STATE = Gauge(
    f"{PREFIX}_relay_state",
    "Processes that see the mail relay in this state (each process is in one).",
    ["state"],
    multiprocess_mode="livesum",
)
JOBS_FINISHED = Counter(
    f"{PREFIX}_jobs_finished",
    "Job attempts recorded, by kind and outcome: succeeded, retried (a failure with "
    "attempts left), failed (parked for good).",
    ["kind", "outcome"],
)
EMAILS_SUPPRESSED = Counter(
    f"{PREFIX}_emails_suppressed",
    "Emails not attempted because their address is on the suppression list (the relay "
    "refused it for good at RCPT TO before), by kind.",
    ["kind"],
)
PASSWORD_HASHES = Gauge(
    f"{PREFIX}_password_hashes",
    "Password hashes running, and waiting for a hashing thread, over all processes.",
    ["state"],
    multiprocess_mode="livesum",
)

for _channel in CHANNELS:
    for _outcome in REGISTRATION_OUTCOMES:
        REGISTRATIONS.labels(channel=_channel, outcome=_outcome)


def registration(channel: Channel, outcome: RegistrationOutcome) -> None:
    REGISTRATIONS.labels(channel=channel, outcome=outcome).inc()


def email_delivered(kind: str, seconds: float) -> None:
    _delivery_of(kind).observe(max(0.0, seconds))


@functools.cache  # per email: skip labels()' lookup (the kinds are few)
def _delivery_of(kind: str) -> Histogram:
    return EMAIL_DELIVERY.labels(kind=kind)


def smtp_faults(faults: Iterable[str]) -> None:
    """Show every fault class at 0 from the start (a counter born at 1 hides its first rise)."""
    for fault in faults:
        for operation in ("send", "probe"):
            SMTP_FAILURES.labels(fault=fault, operation=operation)


def smtp_failure(fault: str, operation: SmtpOperation) -> None:
    SMTP_FAILURES.labels(fault=fault, operation=operation).inc()


def relay_state(current: str, states: Iterable[str]) -> None:
    for state in states:
        RELAY_STATE.labels(state=state).set(1 if state == current else 0)


def job_finished(kind: str, outcome: JobOutcome) -> None:
    _finished_of(kind, outcome).inc()


@functools.cache  # per job, as above
def _finished_of(kind: str, outcome: JobOutcome) -> Counter:
    return JOBS_FINISHED.labels(kind=kind, outcome=outcome)


def email_suppressed(kind: str) -> None:
    EMAILS_SUPPRESSED.labels(kind=kind).inc()


def email_kinds(kinds: Iterable[str]) -> None:
    """Show the suppressed count of every email kind at 0 from the start."""
    for kind in kinds:
        EMAILS_SUPPRESSED.labels(kind=kind)


def password_hashes(*, running: int, waiting: int) -> None:
    PASSWORD_HASHES.labels(state="running").set(running)
    PASSWORD_HASHES.labels(state="waiting").set(waiting)


@dataclass(frozen=True)
class QueueSnapshot:
    """The jobs waiting, running and parked at one moment, as `backend.jobs.stats` read
    them: each of those states for every kind found, zeros included."""

    # (kind, state) -> jobs
    jobs: dict[tuple[str, str], int] = field(default_factory=dict)
    # kind -> seconds the oldest due job of that kind has been due (0: none due)
    oldest_due_seconds: dict[str, float] = field(default_factory=dict)


def render(queue: QueueSnapshot | None) -> bytes:
    """The page: every process's metrics, then the queue's (`None`: the read failed)."""
    registry = CollectorRegistry(auto_describe=False)
    if MULTIPROCESS:
        _forget_dead_processes()
        MultiProcessCollector(registry, path=str(metrics_dir.PATH))  # type: ignore[no-untyped-call]
    else:
        registry.register(_Registry(REGISTRY))
    registry.register(_QueueCollector(queue))
    return generate_latest(registry)


class _QueueCollector(Collector):
    def __init__(self, queue: QueueSnapshot | None) -> None:
        self._queue = queue

    def collect(self) -> Iterator[Metric]:
        up = GaugeMetricFamily(
            f"{PREFIX}_jobs_read_up",
            "1 if the job figures were read from the database for this scrape, 0 if not.",
            value=0 if self._queue is None else 1,
        )
        yield up
        if self._queue is None:
            return
        jobs = GaugeMetricFamily(
            f"{PREFIX}_jobs",
            "Jobs pending, running and failed (parked), by kind.",
            labels=["kind", "state"],
        )
        for (kind, state), count in sorted(self._queue.jobs.items()):
            jobs.add_metric([kind, state], count)
        yield jobs
        oldest = GaugeMetricFamily(
            f"{PREFIX}_jobs_oldest_due_age_seconds",
            "How long the oldest pending job that is due has been due, by kind (0: none).",
            labels=["kind"],
        )
        for kind, seconds in sorted(self._queue.oldest_due_seconds.items()):
            oldest.add_metric([kind], seconds)
        yield oldest


class _Registry(Collector):
    def __init__(self, registry: CollectorRegistry) -> None:
        self._registry = registry

    def collect(self) -> Iterable[Metric]:
        return self._registry.collect()


_FILE_PID = re.compile(r"gauge_live\w+_(\d+)\.db")


def _forget_dead_processes() -> None:
    """Drop the live gauges of workers that are gone (uvicorn replaces a dead worker, and
    tells nobody): their hashes in flight and their view of the relay ended with them.
    Their counters stay: a total does not drop because a worker was replaced."""
    pids = {
        int(match.group(1))
        for name in os.listdir(metrics_dir.PATH)
        if (match := _FILE_PID.fullmatch(name))
    }
    for pid in pids:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            with contextlib.suppress(OSError):
                mark_process_dead(pid, path=str(metrics_dir.PATH))  # type: ignore[no-untyped-call]
        except PermissionError:
            pass
