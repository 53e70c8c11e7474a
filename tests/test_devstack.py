"""`make dev` as a developer runs it: a real `python -m backend.devstack` in a terminal's
process group, stopped with Ctrl-C (SIGINT to the whole group), then started again."""

import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from backend.devstack import REPO_ROOT
from tests.support.helpers import user_json


@pytest.fixture
def outside_pytest_tmp() -> Iterator[Path]:
    """A directory for the dev data outside pytest's own: run as root, Postgres runs as the
    `pgserver` user, who must traverse every parent directory. pgserver opens them up at
    start, but any pytest session that starts meanwhile (a second suite on the machine)
    closes /tmp/pytest-of-root again (mode 0700), and pg_ctl could no longer stop it."""
    with tempfile.TemporaryDirectory(prefix="devstack-test-") as directory:
        yield Path(directory)


@contextmanager
def devstack(data_dir: Path, log: Path) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    """The dev stack on free ports, in a session of its own as a terminal would run it;
    yields the process and the app's URL once uvicorn has started."""
    command = [sys.executable, "-m", "backend.devstack", "--no-reload", "--data-dir", str(data_dir)]
    command += ["--app-port", "0", "--smtp-port", "0", "--inbox-port", "0"]
    with log.open("wb") as out:
        stack = subprocess.Popen(
            command,
            cwd=REPO_ROOT,
            # Without one of the developer's: the stack makes one and prints it.
            env={k: v for k, v in os.environ.items() if k != "OPS_PASSWORD"},
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + 90
        while not (found := re.search(r"Uvicorn running on (http://\S+)", log.read_text())):
            assert stack.poll() is None, f"the dev stack exited early:\n{log.read_text()}"
            assert time.monotonic() < deadline, f"the app never started:\n{log.read_text()}"
            time.sleep(0.2)
        yield stack, found.group(1)
    finally:
        if stack.poll() is None:
            os.killpg(stack.pid, signal.SIGKILL)
            stack.wait(timeout=10)
        _kill_leftover_postgres(data_dir / "pg")


def _kill_leftover_postgres(pgdata: Path) -> None:
    # Only after a failure: Postgres is in its own session, out of reach of the killpg.
    pid_file = pgdata / "postmaster.pid"
    if pid_file.exists():
        os.kill(int(pid_file.read_text().split()[0]), signal.SIGQUIT)


def ctrl_c(stack: subprocess.Popen[bytes]) -> int:
    """What the terminal does on Ctrl-C: SIGINT to every process of the foreground group."""
    os.killpg(stack.pid, signal.SIGINT)
    return stack.wait(timeout=60)


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_ctrl_c_stops_everything_cleanly_and_data_survives(
    tmp_path: Path, outside_pytest_tmp: Path
) -> None:
    data_dir = outside_pytest_tmp / "devdata"
    first_log, second_log = tmp_path / "first.log", tmp_path / "second.log"
    with devstack(data_dir, first_log) as (stack, url):
        assert httpx.post(f"{url}/api/register", json=user_json("ada")).status_code == 201
        # The operator page is on, with the password the banner shows.
        banner = re.search(
            r"Operator page +\S+/ops/jobs +\(user ops, password (\S+)\)", first_log.read_text()
        )
        assert banner, first_log.read_text()
        assert httpx.get(f"{url}/ops/jobs").status_code == 401
        operator = httpx.get(f"{url}/ops/jobs", auth=("ops", banner.group(1)))
        assert operator.status_code == 200 and "email.welcome" in operator.text
        assert ctrl_c(stack) == 0
    output = first_log.read_text()
    assert "Stopping Postgres…" in output
    # pg_ctl's complaints came through pgserver's logger as ERROR and WARNI(NG) lines.
    for noise in ("ERROR", "WARNI", "Traceback", "killing it instead"):
        assert noise not in output, output
    assert not (data_dir / "pg" / "postmaster.pid").exists(), "Postgres is still running"

    with devstack(data_dir, second_log) as (stack, url):
        again = httpx.post(f"{url}/api/register", json=user_json("ada"))
        assert again.status_code == 409, "the first run's user is gone"
        assert ctrl_c(stack) == 0
    assert "ERROR" not in second_log.read_text()
