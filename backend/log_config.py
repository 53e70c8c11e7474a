"""One log format for the app's lines, uvicorn's and everything else in the process.

Every line has a time and a level. `LOG_FORMAT=json` (the default outside development)
writes one JSON object per line, for a log pipeline; `text` (the default in development)
writes lines for people. A filter adds who the line is about (`request_id`, `job_id`,
`job_kind`, from `observability.request_context`), so one registration can be followed
from its POST to the SMTP `250` with one grep.

Called from `create_app`, which uvicorn imports after it has configured its own loggers
(in every worker, and again after a reload). One handler on the root logger writes
everything to stderr; uvicorn's loggers are handed to it only while they still have
uvicorn's own handlers: an operator's `--log-config` stays in charge of them. Where
logging is already set up (a host application, pytest), the root logger is left alone.

Postgres puts the values of a refused row in an error's DETAIL ("Key (lower(email))=
(ada@example.com) already exists", "Failing row contains (..., $argon2id$...)"), and
asyncpg puts the DETAIL in the exception's text: both formats hide it, in messages and
tracebacks alike. (The SQL parameters are hidden by the engines: `db.py`.)
"""

import logging
import re
import sys
from datetime import UTC, datetime
from typing import Any, Literal

from pythonjsonlogger.core import RESERVED_ATTRS
from pythonjsonlogger.json import JsonFormatter
from uvicorn.logging import ColourizedFormatter

from backend.observability.request_context import current

LogFormat = Literal["json", "text"]

_HANDLER_NAME = "backend"
# The context fields, in the order the text format shows them.
CONTEXT_FIELDS = ("request_id", "job_id", "job_kind")
# Up to the end of the line, or of the line as repr() or JSON escaped it.
_DETAIL = re.compile(r"DETAIL:  [^\n]*?(?=\\n|$)", re.MULTILINE)
_DETAIL_HIDDEN = "DETAIL:  (hidden: it may hold personal data)"
_TOKEN = re.compile(r"([?&])token=[^&]*")


def hide_details(text: str) -> str:
    # The substring test first: a line costs no regex unless it has a DETAIL.
    return _DETAIL.sub(_DETAIL_HIDDEN, text) if "DETAIL:" in text else text


class ContextFilter(logging.Filter):
    """Adds the current request and job to every record that passes the handler."""

    def filter(self, record: logging.LogRecord) -> bool:
        context = current()
        if context is not None:
            fields = record.__dict__
            if context.request_id is not None:
                fields.setdefault("request_id", context.request_id)
            if context.job_id is not None:
                fields.setdefault("job_id", context.job_id)
                fields.setdefault("job_kind", context.job_kind)
        if record.name == "uvicorn.access" and isinstance(record.args, tuple):
            _access_fields(record, record.args)
        return True


def _access_fields(record: logging.LogRecord, args: tuple[Any, ...]) -> None:
    # uvicorn's access line is `'%s - "%s %s HTTP/%s" %d'` (client, method, path with query,
    # version, status): the same as fields, for `jq 'select(.status >= 500)'`.
    if len(args) != 5:
        return
    path = args[2]
    if isinstance(path, str) and "token=" in path:
        # A verification link's token confirms an address: it stays out of the logs.
        path = _TOKEN.sub(r"\1token=(hidden)", path)
        record.args = (args[0], args[1], path, *args[3:])
    record.__dict__.update(client=args[0], method=args[1], path=path, status=args[4])


class JsonLines(JsonFormatter):
    def __init__(self) -> None:
        super().__init__(
            "{asctime}{levelname}{name}{message}",
            style="{",
            rename_fields={"asctime": "time", "levelname": "level", "name": "logger"},
            # uvicorn passes an ANSI-coloured copy of some messages as an extra.
            reserved_attrs=[*RESERVED_ATTRS, "color_message"],
            json_ensure_ascii=False,
        )

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        return datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds")

    def formatException(self, ei: Any) -> str:
        text = super().formatException(ei)
        return hide_details(text if isinstance(text, str) else "\n".join(text))

    def process_log_record(self, log_data: dict[str, Any]) -> dict[str, Any]:
        message = log_data.get("message")
        if isinstance(message, str):
            log_data["message"] = hide_details(message)
        return log_data


class TextLines(logging.Formatter):
    """`2026-12-15 10:42:07,123 INFO     backend.mail.sender: message  request_id=… job_id=…`"""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)-8s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        fields = record.__dict__
        context = " ".join(f"{name}={fields[name]}" for name in CONTEXT_FIELDS if name in fields)
        if context:
            head, newline, rest = line.partition("\n")
            line = f"{head}  {context}{newline}{rest}"
        # Here, not in formatException: another handler may have cached the traceback.
        return hide_details(line)


def configure_logging(level: str, *, log_format: LogFormat = "json") -> None:
    root = logging.getLogger()
    ours = next((h for h in root.handlers if h.name == _HANDLER_NAME), None)
    if ours is None and root.handlers:
        # Someone else's logging (a host application, pytest): only our level is ours.
        logging.getLogger("backend").setLevel(level.upper())
        return
    if ours is None:
        ours = logging.StreamHandler(sys.stderr)
        ours.name = _HANDLER_NAME
        ours.addFilter(ContextFilter())
        root.addHandler(ours)
    ours.setFormatter(JsonLines() if log_format == "json" else TextLines())
    logging.getLogger("backend").setLevel(level.upper())
    for name in ("uvicorn", "uvicorn.access"):
        _take_over(logging.getLogger(name))


def _take_over(logger: logging.Logger) -> None:
    """Send a uvicorn logger's lines to the root handler, if uvicorn's own config set it
    up (its formatters are uvicorn's). `--no-access-log` leaves none: nothing to take."""
    handlers = logger.handlers
    if handlers and all(isinstance(h.formatter, ColourizedFormatter) for h in handlers):
        for handler in list(handlers):
            logger.removeHandler(handler)
        logger.propagate = True
