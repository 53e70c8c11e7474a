"""The mail relay's state as this process sees it, and the probe that notices its return.

While the relay is unavailable or refuses us, the email jobs stay in the queue instead of
each burning attempts on its own timer; one probe at a time checks the relay every
`probe_seconds`, and the moment it answers, everything held becomes due at once (the
`on_available` callbacks wake the job runner). When the relay asks us to slow down, the
queue pauses for a cool-down that doubles while it keeps asking, then resumes.

Each change of state is logged once (an error while the relay is not available) and
written to `relay_status` for people to see (`python -m backend jobs`, `/ops/jobs`).
"""

import asyncio
import contextlib
import enum
import logging
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

from sqlalchemy import func, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from backend.mail.faults import Fault, classify, describe
from backend.models import RelayStatus
from backend.observability import metrics

log = logging.getLogger(__name__)


class RelayState(enum.Enum):
    AVAILABLE = "available"
    UNAVAILABLE = "unavailable"
    REFUSING = "refusing"
    THROTTLED = "throttled"


_STATE_OF = {
    Fault.RELAY_UNAVAILABLE: RelayState.UNAVAILABLE,
    Fault.RELAY_REFUSES_US: RelayState.REFUSING,
    Fault.RELAY_THROTTLED: RelayState.THROTTLED,
}


class RelayMonitor:
    def __init__(
        self,
        *,
        name: str,
        probe: Callable[[], Awaitable[None]],
        probe_seconds: float,
        cooldown_seconds: float = 5.0,
        cooldown_cap_seconds: float = 300.0,
        sessionmaker: async_sessionmaker[AsyncSession] | None = None,
    ) -> None:
        self.name = name
        self._probe = probe
        self._probe_seconds = probe_seconds
        self._cooldown_base = cooldown_seconds
        self._cooldown_cap = cooldown_cap_seconds
        self._cooldown = cooldown_seconds
        self._sessionmaker = sessionmaker
        self.state = RelayState.AVAILABLE
        self.since = time.time()
        self.last_error: str | None = None
        self._watch: asyncio.Task[None] | None = None
        self._writes: set[asyncio.Task[None]] = set()
        self._on_available: list[Callable[[], None]] = []
        metrics.relay_state(self.state.value, (state.value for state in RelayState))

    def on_available(self, callback: Callable[[], None]) -> None:
        self._on_available.append(callback)

    def ready(self) -> bool:
        return self.state is RelayState.AVAILABLE

    def report_delivered(self) -> None:
        """A message went through: a throttle is forgiven bit by bit."""
        self._cooldown = max(self._cooldown_base, self._cooldown / 2)

    def report(self, fault: Fault, error: str) -> None:
        """The relay failed us (not the message): hold everything until it is back."""
        state = _STATE_OF[fault]
        self.last_error = error
        if state is not self.state:
            self._change(state, error)
        if self._watch is None or self._watch.done():
            self._watch = asyncio.create_task(self._until_back(), name=f"relay {self.name}")

    async def close(self) -> None:
        if self._watch is not None:
            self._watch.cancel()
            await asyncio.gather(self._watch, return_exceptions=True)
        await asyncio.gather(*self._writes, return_exceptions=True)

    async def _until_back(self) -> None:
        """One watcher at a time: cool down while throttled, probe while down or refusing."""
        while True:
            if self.state is RelayState.THROTTLED:
                await asyncio.sleep(self._cooldown)
                self._cooldown = min(self._cooldown_cap, self._cooldown * 2)
                if self.state is RelayState.THROTTLED:
                    self._change(RelayState.AVAILABLE, None)
                    return
                continue  # it went down meanwhile: probe
            await asyncio.sleep(self._probe_seconds)
            try:
                await self._probe()
            except Exception as exc:
                # Still down, or now refusing us instead (a throttle answer still means down).
                fault = classify(exc)
                metrics.smtp_failure(fault.name.lower(), "probe")
                state = _STATE_OF.get(fault, RelayState.UNAVAILABLE)
                self.last_error = describe(exc)
                if state not in (self.state, RelayState.THROTTLED):
                    self._change(state, self.last_error)
                continue
            self._change(RelayState.AVAILABLE, None)
            return

    def _change(self, state: RelayState, error: str | None) -> None:
        was, down_for = self.state, time.time() - self.since
        self.state, self.since = state, time.time()
        metrics.relay_state(state.value, (state.value for state in RelayState))
        if state is RelayState.AVAILABLE:
            log.warning(
                "mail relay %s is available again after %.1fs %s",
                *(self.name, down_for, was.value),
            )
            for callback in self._on_available:
                callback()
        else:
            log.error(
                "mail relay %s is %s: %s; email is held until it is back",
                *(self.name, state.value, error),
            )
        if self._sessionmaker is not None:
            task = asyncio.create_task(self._write(self._sessionmaker, state, self.since, error))
            self._writes.add(task)
            task.add_done_callback(self._writes.discard)

    async def _write(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        state: RelayState,
        since: float,
        error: str | None,
    ) -> None:
        values = {
            "relay": self.name,
            "state": state.value,
            "since": datetime.fromtimestamp(since, UTC),
            "last_error": error,
        }
        statement = insert(RelayStatus).values(values)
        statement = statement.on_conflict_do_update(
            index_elements=[RelayStatus.relay],
            set_={**values, "updated_at": func.now()},
        )
        # For people only: a database hiccup here must not disturb sending.
        with contextlib.suppress(Exception):
            async with sessionmaker() as session, session.begin():
                await session.execute(statement)


async def recorded_states(session: AsyncSession) -> list[RelayStatus]:
    """Each relay's last state change as the senders wrote it (the CLI, the operator page)."""
    return list(await session.scalars(select(RelayStatus).order_by(RelayStatus.relay)))
