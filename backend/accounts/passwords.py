"""Argon2id password hashing in a bounded pool, with a bounded queue in front of it.

A hash is tens of milliseconds of CPU and tens of MiB of memory. Run on the default
executor, every concurrent registration would start its own hash (and each hash its
own lanes), and a burst would leave dozens of runnable threads fighting the event loop
for the cores: the health check and every page would wait behind them. Here at most
`workers` hashes run at once (one per core by default); up to `queue_limit` more wait
in the executor's one queue, as queued work rather than threads; past that, a
registration is told at once to come back (`HashingOverloaded`), never queued without
bound.

The parameters are Argon2id with t=3 passes over m=64 MiB: RFC 9106's second recommended
option (for when 2 GiB per hash is too much), and above OWASP's minimums. Its `p=4` lanes
become p=1 here: each lane is a thread, and on a small machine four lanes per hash only
add runnable threads beside the event loop without adding throughput (measured on 2
cores, two hashes at a time: 11.6 hashes/s at p=1, 12.1 at p=4, with 2 threads busy
instead of 8). OWASP's Argon2id configurations all use p=1. Stored hashes carry their own
parameters, so hashes made with other ones still verify.

The hashing threads also run at a lower CPU priority than the event loop (Linux `nice`
per thread): a hash that waits a few milliseconds costs nothing, while a health check or
a shed request that waits behind two hashes misses its deadline. With nothing else to
run, the hashes still get every core.
"""

import asyncio
import logging
import math
import os
import secrets
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from pwdlib import PasswordHash
from pwdlib.exceptions import UnknownHashError
from pwdlib.hashers.argon2 import Argon2Hasher

from backend.observability import metrics

T = TypeVar("T")

log = logging.getLogger(__name__)

# Added to the threads' niceness: 10 leaves them about a tenth of the event loop's weight.
HASH_THREAD_NICENESS = 10


class HashingOverloaded(Exception):
    """More registrations than the hashers can serve; `retry_after` seconds is a fair wait."""

    def __init__(self, retry_after: int) -> None:
        super().__init__(f"password hashing is saturated; retry after {retry_after}s")
        self.retry_after = retry_after


class PasswordHasher:
    def __init__(
        self,
        *,
        workers: int | None = None,
        queue_limit: int = 8,
        time_cost: int = 3,
        memory_kib: int = 65536,
        parallelism: int = 1,
    ) -> None:
        self.workers = workers or os.cpu_count() or 1
        self.queue_limit = queue_limit
        self._hash = PasswordHash(
            (Argon2Hasher(time_cost=time_cost, memory_cost=memory_kib, parallelism=parallelism),)
        )
        self._executor = ThreadPoolExecutor(
            self.workers, thread_name_prefix="argon2", initializer=_lower_thread_priority
        )
        # What an unknown account's password is checked against, so that it costs what a
        # wrong password costs (the same parameters, so the same time). Made once, here.
        self._dummy_hash = self._hash.hash(secrets.token_urlsafe(16))
        self._admitted = 0
        self._seconds_per_hash = 0.1  # refined as hashes run; only used for Retry-After
        self._publish()

    @property
    def waiting(self) -> int:
        """Hashes queued behind the running ones (the depth of the one queue)."""
        return max(0, self._admitted - self.workers)

    async def hash(self, password: str) -> str:
        return await self._run(self._hash.hash, password)

    async def verify(self, password: str, password_hash: str) -> bool:
        return await self._run(self._hash.verify, password, password_hash)

    async def verify_and_update(
        self, password: str, password_hash: str | None
    ) -> tuple[bool, str | None]:
        """Whether `password` matches, and a new hash when the stored one was made with
        other parameters (to store in its place). `password_hash` None (no such
        account): checked against a dummy hash, same cost, always False."""
        if password_hash is None:
            await self._run(self._hash.verify_and_update, password, self._dummy_hash)
            return False, None
        return await self._run(_verify_and_update, self._hash, password, password_hash)

    async def _run(self, function: Callable[..., T], *args: object) -> T:
        if self._admitted >= self.workers + self.queue_limit:
            # The queue drains in about this long: a client that waits that much gets in.
            drain = (self.queue_limit + 1) * self._seconds_per_hash / self.workers
            raise HashingOverloaded(retry_after=max(1, math.ceil(drain)))
        self._admitted += 1
        self._publish()
        try:
            loop = asyncio.get_running_loop()
            return await loop.run_in_executor(self._executor, self._timed, function, *args)
        finally:
            self._admitted -= 1
            self._publish()

    def _publish(self) -> None:
        metrics.password_hashes(running=min(self._admitted, self.workers), waiting=self.waiting)

    def _timed(self, function: Callable[..., T], *args: object) -> T:
        started = time.perf_counter()
        result = function(*args)
        self._seconds_per_hash = 0.8 * self._seconds_per_hash + 0.2 * (
            time.perf_counter() - started
        )
        return result

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)


def _verify_and_update(
    hasher: PasswordHash, password: str, password_hash: str
) -> tuple[bool, str | None]:
    try:
        return hasher.verify_and_update(password, password_hash)
    except UnknownHashError:
        # Not an Argon2 hash (a row written by hand, an import): no password matches it.
        return False, None


def _lower_thread_priority() -> None:
    # Only Linux gives each thread its own nice value (`setpriority` on its thread id);
    # elsewhere that id could name another process, so leave the priority alone.
    if sys.platform != "linux":
        return
    thread_id = threading.get_native_id()
    try:
        os.setpriority(
            os.PRIO_PROCESS,
            thread_id,
            os.getpriority(os.PRIO_PROCESS, thread_id) + HASH_THREAD_NICENESS,
        )
    except OSError as exc:  # raising a niceness needs no privilege; stay safe anyway
        log.warning("could not lower the hashing threads' priority: %s", exc)
