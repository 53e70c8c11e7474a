"""Make the app's own log lines (job retries, give-ups) visible beside uvicorn's.

Uvicorn configures only its own loggers; without this, `backend.*` warnings would
reach stderr through Python's last-resort handler, with no level or logger name.
Where logging is already set up (a host application, pytest), it is left alone.
"""

import logging


def configure_logging(level: str) -> None:
    logger = logging.getLogger("backend")
    logger.setLevel(level.upper())
    if not logger.handlers and not logging.getLogger().handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(levelname)-9s %(name)s: %(message)s"))
        logger.addHandler(handler)
