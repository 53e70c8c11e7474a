"""The mail relay's state, shared by the processes, and the probe that notices its return.

While the relay is unavailable or refuses us, the email jobs stay in the queue instead of
each burning attempts on its own timer; one probe at a time checks the relay every
`probe_seconds`, and the moment it answers, everything held becomes due at once (the
`on_available` callbacks wake the job runner). When the relay asks us to slow down, the
queue pauses for a cool-down that doubles while it keeps asking, then resumes.

With a database (`sessionmaker`), the state is shared through `relay_status`
(`relay_shared.py`): each change is written there, a process that sees the relay
available reads the row once a second (one primary-key read) and holds its email too
when another process recorded the relay down since; a process that
holds reads it twice a second, resumes the moment another recorded the relay back, and
probes only when it takes the probe turn, so the processes together probe once every
`probe_seconds`. The cool-down after a throttle stays each process's own. Without an
answer from the database, a process keeps its own view and probes on its own timer.

Each change of state is logged once (an error while the relay is not available).
"""

import asyncio
import enum
import logging
import time
from collections.abc import Awaitable, Callable
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from backend.mail import relay_shared
from backend.mail.faults import Fault, classify, describe
from backend.models import RelayStatus
from backend.observability import metrics

log = logging.getLogger(__name__)

# How often a process that sees the relay available reads the shared state.
LOOK_EVERY_SECONDS = 1.0


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


_STATES = {state.value for state in RelayState}


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
        # The database's `since` of the state this process holds, as the row has it;
        # None until known (and while this process's own change is being written).
        self._mark: datetime | None = None
        self._writing = 0
        self._found_here = True
        self._looks: asyncio.Task[None] | None = None
        self._probed_at = 0.0
        self._watch: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._on_available: list[Callable[[], None]] = []
        metrics.relay_state(self.state.value, (state.value for state in RelayState))

    def on_available(self, callback: Callable[[], None]) -> None:
        self._on_available.append(callback)

    def ready(self) -> bool:
        # Started by the runner's first question (the event loop runs by then).
        if self._sessionmaker is not None and self._looks is None:
            self._looks = asyncio.create_task(self._look_now_and_then(), name="relay looks")
        return self.state is RelayState.AVAILABLE

    def report_delivered(self) -> None:
        """A message went through: a throttle is forgiven bit by bit."""
        self._cooldown = max(self._cooldown_base, self._cooldown / 2)

    def report(self, fault: Fault, error: str) -> None:
        """The relay failed us (not the message): hold everything until it is back."""
        state = _STATE_OF[fault]
        self.last_error = error
        self._probed_at = time.monotonic()  # finding it down counts as a probe
        if state is not self.state:
            self._change(state, error)
        self._start_watch()

    async def close(self) -> None:
        for task in (self._watch, self._looks):
            if task is not None:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def _start_watch(self) -> None:
        if self._watch is None or self._watch.done():
            self._watch = asyncio.create_task(self._until_back(), name=f"relay {self.name}")

    async def _until_back(self) -> None:
        """One watcher at a time: cool down while throttled, probe while down or refusing."""
        tick = min(self._probe_seconds, 0.5)
        while True:
            if self.state is RelayState.THROTTLED:
                ends = time.monotonic() + self._cooldown
                while (left := ends - time.monotonic()) > 0:
                    await asyncio.sleep(min(tick, left))
                    if self._back_elsewhere(await self._look(take_turn=False)):
                        return
                self._cooldown = min(self._cooldown_cap, self._cooldown * 2)
                if self.state is RelayState.THROTTLED and self._found_here:
                    self._change(RelayState.AVAILABLE, None)
                    return
                if self.state is RelayState.THROTTLED:
                    # Another's throttle, cooled down here: the row stays theirs to end.
                    self._enter(RelayState.AVAILABLE, None, found="its own cool-down")
                    return
                continue  # it went down meanwhile: probe
            seen = await self._look(take_turn=True)
            if self._back_elsewhere(seen):
                return
            if self._my_turn(seen) and await self._probed_back():
                return
            await asyncio.sleep(tick)

    async def _look(self, *, take_turn: bool) -> relay_shared.Seen | None:
        if self._sessionmaker is None:
            return None
        return await relay_shared.look(
            self._sessionmaker,
            relay=self.name,
            take_turn=take_turn,
            every_seconds=self._probe_seconds,
        )

    def _back_elsewhere(self, seen: relay_shared.Seen | None) -> bool:
        """When another process recorded the relay back since this one's down-mark, this
        one resumes too, at once."""
        if seen is None or seen.state != RelayState.AVAILABLE.value or self._writing:
            return False
        if self._mark is None or seen.since <= self._mark:
            return False  # this process's own news is the newer
        self._adopt(RelayState.AVAILABLE, None, seen.since)
        return True

    def _my_turn(self, seen: relay_shared.Seen | None) -> bool:
        """Whether to probe now: when this process took the shared turn; when the row does
        not hold this down state (not written, or no answer), by its own timer."""
        if seen is not None and seen.state != RelayState.AVAILABLE.value:
            return seen.my_turn
        return time.monotonic() - self._probed_at >= self._probe_seconds

    async def _probed_back(self) -> bool:
        self._probed_at = time.monotonic()
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
            return False
        self._change(RelayState.AVAILABLE, None)
        return True

    async def _look_now_and_then(self) -> None:
        """While this process sees the relay available, whether another found it down."""
        while True:
            await asyncio.sleep(LOOK_EVERY_SECONDS)
            if self.state is RelayState.AVAILABLE:
                await self._look_while_available()

    async def _look_while_available(self) -> None:
        seen = await self._look(take_turn=False)
        if seen is None or seen.state == RelayState.AVAILABLE.value:
            return
        if self.state is not RelayState.AVAILABLE or self._writing:
            return
        if self._mark is not None and seen.since <= self._mark:
            return  # this process saw it back after that
        if seen.state not in _STATES:
            return  # written by another version of the app: not news this one can act on
        self._adopt(RelayState(seen.state), seen.last_error, seen.since)
        self._start_watch()

    def _adopt(self, state: RelayState, error: str | None, since: datetime) -> None:
        """Take another process's news as this process's own view, without writing it."""
        self._mark = since
        self.last_error = error
        self._found_here = False
        self._enter(state, error, found="another process")

    def _change(self, state: RelayState, error: str | None) -> None:
        self._found_here = True
        self._enter(state, error, found="this process")
        if self._sessionmaker is not None:
            self._mark = None
            self._writing += 1
            self._spawn(self._write(self._sessionmaker, state, error))

    def _enter(self, state: RelayState, error: str | None, *, found: str) -> None:
        was, down_for = self.state, time.time() - self.since
        self.state, self.since = state, time.time()
        metrics.relay_state(state.value, (state.value for state in RelayState))
        if state is RelayState.AVAILABLE:
            log.warning(
                "mail relay %s is available again after %.1fs %s (found by %s)",
                *(self.name, down_for, was.value, found),
            )
            for callback in self._on_available:
                callback()
        else:
            log.error(
                "mail relay %s is %s (found by %s): %s; email is held until it is back",
                *(self.name, state.value, found, error),
            )

    def _spawn(self, coroutine: Awaitable[None]) -> None:
        task = asyncio.ensure_future(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _write(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        state: RelayState,
        error: str | None,
    ) -> None:
        try:
            since = await relay_shared.write(
                sessionmaker, relay=self.name, state=state.value, error=error
            )
        finally:
            self._writing -= 1
        # A later change of this process's own supersedes this one's mark.
        if since is not None and self.state is state and not self._writing:
            self._mark = since


async def recorded_states(session: AsyncSession) -> list[RelayStatus]:
    """Each relay's last state change as the senders wrote it (the CLI, the operator page)."""
    return list(await session.scalars(select(RelayStatus).order_by(RelayStatus.relay)))
