"""Where this server's processes keep their metrics: chosen on import, before
prometheus_client is imported (it picks its multiprocess mode then, from the environment).

`uvicorn --workers N` starts a supervisor that never imports the app, and N workers that
each import it; each worker counts in files of its own, and a scrape, answered by any
worker, adds up all of them (prometheus_client's multiprocess mode). So every worker of a
server must name the same directory, two servers on one machine must not, and a new server
must not count the files of an old one. With no directory given:

- the server is its root process: the supervisor that spawned this worker
  (`multiprocessing.parent_process()`: uvicorn spawns its workers, and its reloader, that
  way), or this process when it serves alone;
- its directory is `<tmp>/welcome-mail-metrics-<uid>/<pid>-<start time>`: the start time
  (Linux, from /proc) tells a reused pid from the old server that had it;
- directories whose root process is gone are deleted at start.

`PROMETHEUS_MULTIPROC_DIR` set by the operator wins (a supervisor that forks, such as
gunicorn, needs it); that directory must then be emptied before each start. The value
this module chose is exported too, for prometheus_client, and is recognised as its own
(`_CHOSEN`) in a process started from this one, which then chooses again.
"""

import contextlib
import multiprocessing
import os
import shutil
import stat
import tempfile
from pathlib import Path

ENV = "PROMETHEUS_MULTIPROC_DIR"
# Set beside ENV when this module chose it: a child process sees it is inherited, not given.
_CHOSEN = "WELCOME_MAIL_METRICS_DIR_CHOSEN"


def _start_time(pid: int) -> str:
    """The process's start time in clock ticks since boot; "" where /proc has no stat."""
    try:
        stat_line = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return ""
    # Field 22; the command name (field 2) may hold spaces and parentheses.
    return stat_line.rpartition(")")[2].split()[19]


def _alive(pid: int, start_time: str) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # someone else's process: alive, and not the root it names
    return not start_time or _start_time(pid) in ("", start_time)


def _private_base() -> Path:
    """A directory only this user can write to (a shared /tmp lets others pre-create names)."""
    base = Path(tempfile.gettempdir()) / f"welcome-mail-metrics-{os.getuid()}"
    base.mkdir(mode=0o700, exist_ok=True)
    info = base.lstat()
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid():
        raise RuntimeError(f"{base} is not a directory of this user's; set {ENV}")
    return base


def _sweep(base: Path) -> None:
    """Delete the directories of servers that are gone."""
    for entry in base.iterdir():
        pid, _, start_time = entry.name.partition("-")
        if pid.isdigit() and not _alive(int(pid), start_time):
            with contextlib.suppress(OSError):
                shutil.rmtree(entry)


def _choose() -> Path:
    parent = multiprocessing.parent_process()
    root = parent.pid if parent is not None and parent.pid is not None else os.getpid()
    base = _private_base()
    _sweep(base)
    path = base / f"{root}-{_start_time(root)}"
    path.mkdir(mode=0o700, exist_ok=True)
    return path


def _directory() -> Path:
    given = os.environ.get(ENV)
    if given and given != os.environ.get(_CHOSEN):
        path = Path(given)
        path.mkdir(parents=True, exist_ok=True)
        return path
    path = _choose()
    os.environ[ENV] = os.environ[_CHOSEN] = str(path)
    return path


PATH = _directory()
