"""Traces (optional): spans for the request, the job run and the SMTP send.

On only when the OpenTelemetry SDK and its OTLP/HTTP exporter are installed (the `otel`
extra) and `OTEL_EXPORTER_OTLP_ENDPOINT` is set (read by the SDK, like the other `OTEL_*`
variables). Otherwise `active` stays None, and this module imports nothing of OTel: the
code on the hot paths (the request middleware, `enqueue`, each email sent) checks `active`
once and does nothing else, so tracing that is off costs an attribute read.

The SDK is imported from `backend.observability.otel`, only by `start()`.
"""

import logging
import os
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from backend.observability.otel import Spans

log = logging.getLogger(__name__)

DEFAULT_SERVICE_NAME = "welcome-mail"
_ENDPOINT = "OTEL_EXPORTER_OTLP_ENDPOINT"

# The spans maker while tracing is on; None when it is off.
active: "Spans | None" = None


@dataclass(frozen=True, slots=True)
class JobTrace:
    """What a job's span says about it, and the request span it continues (the W3C
    `traceparent` stored with the job; None when it was queued untraced)."""

    job_id: int
    kind: str
    attempt: int
    parent: str | None


def start() -> bool:
    """Set up tracing if it is asked for and installed; True when it is on."""
    global active
    if active is not None:
        return True
    if not os.environ.get(_ENDPOINT):
        return False
    try:
        from backend.observability.otel import Spans
    except ImportError as exc:
        log.warning(
            "OTEL_EXPORTER_OTLP_ENDPOINT is set but the OpenTelemetry packages are not "
            "installed (pip install 'welcome-mail[otel]'): no traces (%s)",
            exc,
        )
        return False
    service = os.environ.get("OTEL_SERVICE_NAME") or DEFAULT_SERVICE_NAME
    active = Spans.start(service_name=service)
    log.info("traces on: service %s, OTLP/HTTP to %s", service, os.environ[_ENDPOINT])
    return True


def stop() -> None:
    """Flush the spans not yet sent and stop (blocks up to the exporter's timeout)."""
    global active
    spans, active = active, None
    if spans is not None:
        spans.shutdown()


def current_traceparent() -> str | None:
    """The W3C `traceparent` of the current span, to store with a job; None when off."""
    spans = active
    return None if spans is None else spans.traceparent()
