"""Reading a real uvicorn's log (JSON lines, outside development)."""

import asyncio
import json
import time
from collections.abc import Callable
from typing import Any

from tests.support.server import AppProcess

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
