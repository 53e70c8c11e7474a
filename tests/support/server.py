"""The app as a real `uvicorn` process, configured through the environment like in production."""

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import ClassVar

import httpx
from pydantic import SecretStr

from backend.settings import Settings

REPO_ROOT = Path(__file__).resolve().parents[2]
LOG_TAIL_LINES = 60


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

    # The processes made during the current test (conftest empties it after each test).
    started_in_this_test: ClassVar[list["AppProcess"]] = []

    def __init__(self, settings: Settings, *, graceful_timeout: float = 10) -> None:
        self.settings = settings
        # Bound here and handed to uvicorn (--fd): picking a free port and binding it later
        # races with the other test workers, and the health check could then reach theirs.
        self._socket = socket.create_server(("127.0.0.1", 0))
        self.port = int(self._socket.getsockname()[1])
        self.url = f"http://127.0.0.1:{self.port}"
        self._graceful_timeout = graceful_timeout
        # Kept open across start/kill/restart; closed in __exit__.
        self._log = tempfile.NamedTemporaryFile(  # noqa: SIM115
            prefix="uvicorn-", suffix=".log", delete=False
        )
        self.log_path = Path(self._log.name)
        self.process: subprocess.Popen[bytes] | None = None
        AppProcess.started_in_this_test.append(self)

    def start(self, *, ready_within: float = 30) -> "AppProcess":
        if self._socket.fileno() < 0:
            raise RuntimeError("an AppProcess starts once; make a new one to restart")
        env = {**os.environ, **settings_env(self.settings)}
        command = [sys.executable, "-m", "uvicorn", "backend.main:app"]
        command += ["--fd", str(self._socket.fileno())]
        command += ["--timeout-graceful-shutdown", str(self._graceful_timeout)]
        self.process = subprocess.Popen(
            command,
            cwd=REPO_ROOT,
            env=env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            pass_fds=(self._socket.fileno(),),
        )
        self._socket.close()  # uvicorn has its own copy
        deadline = time.monotonic() + ready_within
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"uvicorn exited early:\n{self.log()}")
            try:
                if httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200:
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
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)
        self._socket.close()
        self._log.close()

    def __exit__(self, *exc: object) -> None:
        self.stop()
