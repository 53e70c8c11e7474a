"""Reading a real uvicorn's log: JSON lines (outside development), or lines that name the
worker's pid (`pid_log_config`)."""

import asyncio
import json
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from backend.devstack.app_process import AppProcess

Line = dict[str, Any]


def json_lines(text: str) -> list[Line]:
    """Every line of the log as a JSON object; a line that is not one fails the test."""
    lines = []
    for number, raw in enumerate(text.splitlines(), start=1):
        try:
            line = json.loads(raw)
        except json.JSONDecodeError:
            raise AssertionError(f"line {number} of the log is not JSON: {raw!r}") from None
        assert isinstance(line, dict), raw
        lines.append(line)
    return lines


async def wait_for_lines(
    app: AppProcess, found: Callable[[list[Line]], bool], *, within: float = 20.0
) -> list[Line]:
    """The log's lines, once `found` holds for them."""
    deadline = time.monotonic() + within
    while True:
        lines = json_lines(app.log())
        if found(lines):
            return lines
        if time.monotonic() > deadline:
            raise AssertionError(f"not found in the log within {within}s")
        await asyncio.sleep(0.1)


def access_statuses(text: str, method: str, path: str) -> set[int]:
    """The statuses uvicorn's access lines report for `method path` (JSON lines)."""
    return {
        line["status"]
        for line in json_lines(text)
        if line.get("logger") == "uvicorn.access"
        and line.get("method") == method
        and line.get("path") == path
    }


# With pid_log_config: the pid of the worker that served each registration.
ACCESS_BY_PID = re.compile(r"^(\d+) INFO uvicorn.access: .*POST /api/register", re.M)


def pid_log_config(path: Path) -> Path:
    """uvicorn's log lines prefixed with the worker's pid, to see who served what."""
    line = {"format": "%(process)d %(levelname)s %(name)s: %(message)s"}
    handler = {"class": "logging.StreamHandler", "formatter": "pid", "stream": "ext://sys.stdout"}
    logger = {"handlers": ["out"], "level": "INFO", "propagate": False}
    config = {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"pid": line},
        "handlers": {"out": handler},
        "loggers": {"uvicorn": logger, "uvicorn.access": logger},
    }
    path.write_text(json.dumps(config))
    return path
