"""The app as a real `uvicorn` process, configured through the environment like in
production (for the tests, the bench and the scripts)."""

import contextlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import ClassVar

import httpx
from pydantic import SecretStr

from backend.devstack import REPO_ROOT
from backend.settings import Settings

LOG_TAIL_LINES = 60

# How the image serves the app (the Dockerfile's CMD; tests/test_compose.py holds the two
# together), and so how `make dev`, the tests and the bench run it:
# - no proxy headers: the app decides whose X-Forwarded-For to believe (TRUSTED_PROXIES),
#   from the real peer address, which uvicorn would overwrite;
# - h11, whose parser bounds a request's head (16 KiB: a 10 MiB header, or 100,000 small
#   ones, get 400 before they are held); httptools, uvicorn's faster default, has no bound;
# - at most 1,000 connections and requests in flight per process, 503 past them, so that
#   clients dribbling their headers cannot take every file descriptor (uvicorn has no
#   header timeout: the reverse proxy in front must have one, see docs/deploying.md);
# - no `server: uvicorn` header, which tells a scanner what to try.
SERVING_ARGS = (
    "--no-proxy-headers",
    "--http",
    "h11",
    "--h11-max-incomplete-event-size",
    "16384",
    "--limit-concurrency",
    "1000",
    "--no-server-header",
)


def settings_env(settings: Settings) -> dict[str, str]:
    """The environment variables that reproduce these settings."""
    return {
        name.upper(): value.get_secret_value() if isinstance(value, SecretStr) else str(value)
        for name, value in settings.model_dump().items()
        if value is not None
    }


class AppProcess:
    """A uvicorn process; its output goes to a log file.

    The log outlives the process: tests/conftest.py shows the tail of every log of a
    failed test in the report (and keeps the file), and deletes the logs of a passed one.
    """

    # Every process made since the list was last emptied: tests/conftest.py reads it (and
    # empties it) after each test, to show their logs and stop any left running.
    instances: ClassVar[list["AppProcess"]] = []

    def __init__(
        self,
        settings: Settings,
        *,
        graceful_timeout: float = 10,
        host: str = "127.0.0.1",
        workers: int = 1,
        uvicorn_args: Sequence[str] = (),
        python: str | Path = sys.executable,
        cwd: Path = REPO_ROOT,
    ) -> None:
        """`python` and `cwd`: another interpreter (a virtualenv's) running the app from
        another copy of it (tests/test_lock.py runs the image's files on the lock's packages)."""
        self.settings = settings
        self._python = str(python)
        self._cwd = cwd
        # Bound here and handed to uvicorn (--fd): picking a free port and binding it later
        # races with the other test workers, and the health check could then reach theirs.
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self._socket = socket.create_server((host, 0), family=family)
        # uvicorn takes an --fd for a Unix socket, so the event loop does not set
        # TCP_NODELAY on the connections it accepts, as it does with --port: Nagle then
        # holds a response's body until the client's delayed ACK of its headers, 40 ms
        # later (measured: the bench's shed p99 was that). Accepted sockets inherit it.
        self._socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.port = int(self._socket.getsockname()[1])
        self.url = f"http://[{host}]:{self.port}" if ":" in host else f"http://{host}:{self.port}"
        self._graceful_timeout = graceful_timeout
        self._workers = workers
        self._uvicorn_args = list(uvicorn_args)
        # Kept open across start/kill/restart; closed in __exit__.
        self._log = tempfile.NamedTemporaryFile(  # noqa: SIM115
            prefix="uvicorn-", suffix=".log", delete=False
        )
        self.log_path = Path(self._log.name)
        self.process: subprocess.Popen[bytes] | None = None
        AppProcess.instances.append(self)

    def start(self, *, ready_within: float = 30, ready_path: str = "/healthz") -> "AppProcess":
        """Start uvicorn and wait until `ready_path` answers 200 (/livez for an app whose
        database is meant to be down)."""
        if self._socket.fileno() < 0:
            raise RuntimeError("an AppProcess starts once; make a new one to restart")
        env = {**os.environ, **settings_env(self.settings)}
        command = [self._python, "-m", "uvicorn", "backend.main:app"]
        command += ["--fd", str(self._socket.fileno())]
        command += ["--timeout-graceful-shutdown", str(self._graceful_timeout)]
        command += [*SERVING_ARGS, "--workers", str(self._workers), *self._uvicorn_args]
        self.process = subprocess.Popen(
            command,
            cwd=self._cwd,
            env=env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            pass_fds=(self._socket.fileno(),),
            # Workers get a process group of their own, so that stop() ends them too.
            start_new_session=self._workers > 1,
        )
        self._socket.close()  # uvicorn has its own copy
        deadline = time.monotonic() + ready_within
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"uvicorn exited early:\n{self.log()}")
            try:
                if httpx.get(f"{self.url}{ready_path}", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"uvicorn did not become healthy:\n{self.log()}")

    def kill(self) -> None:
        """SIGKILL: no shutdown code runs, exactly like a crash or an OOM kill."""
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)

    def terminate(self, *, within: float = 30) -> int:
        """SIGTERM: what a process manager sends to stop the app gracefully."""
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout=within)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def log_tail(self, lines: int = LOG_TAIL_LINES) -> str:
        return "\n".join(self.log().splitlines()[-lines:])

    def delete_log(self) -> None:
        self.log_path.unlink(missing_ok=True)

    def __enter__(self) -> "AppProcess":
        return self.start()

    def stop(self) -> None:
        """Kill the process if it still runs. The log stays for conftest, which knows how
        the test ended (and stops whatever a test left running, e.g. after a timeout)."""
        if self.process is not None and self._workers > 1:
            # The whole group: a worker may outlive its supervisor.
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
        if self.process is not None:
            self.process.wait(timeout=10)
        self._socket.close()
        self._log.close()

    def __exit__(self, *exc: object) -> None:
        self.stop()
