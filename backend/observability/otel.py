"""The OpenTelemetry side of `tracing`: imported by `tracing.start()` only, when traces are on.

One provider of the app's own, with a BatchSpanProcessor (spans are queued and sent by a
background thread, never by the request or the send) and the OTLP/HTTP exporter, which
reads its endpoint, headers and timeout from the standard `OTEL_EXPORTER_OTLP_*` variables.
It is not installed as OTel's global provider: FastAPI's own request telemetry (which
starts when a global provider exists) would record every query string, verification
tokens included.

Attributes name the work, never the people: no address, no user id, no query string, no
exception message (an SMTP refusal quotes the recipient), only the exception's type.
"""

from collections.abc import Iterator
from contextlib import contextmanager

from opentelemetry.context import Context
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace import Span, SpanKind, Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from backend.observability.tracing import JobTrace

_W3C = TraceContextTextMapPropagator()
_HEADERS = {b"traceparent": "traceparent", b"tracestate": "tracestate"}
# Span names stay few: a method outside these is named "HTTP" (OTel's HTTP conventions).
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


class Spans:
    def __init__(self, provider: TracerProvider) -> None:
        self._provider = provider
        self._tracer = provider.get_tracer("backend")

    @classmethod
    def start(cls, *, service_name: str) -> "Spans":
        provider = TracerProvider(resource=Resource.create({SERVICE_NAME: service_name}))
        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
        return cls(provider)

    def shutdown(self) -> None:
        self._provider.shutdown()

    def traceparent(self) -> str | None:
        carrier: dict[str, str] = {}
        _W3C.inject(carrier)
        return carrier.get("traceparent")

    async def serve_http(self, app: ASGIApp, scope: Scope, receive: Receive, send: Send) -> None:
        """Run one HTTP request inside its server span, continuing the caller's trace
        when it sent a `traceparent`."""
        carrier = {_HEADERS[k]: v.decode("latin-1") for k, v in scope["headers"] if k in _HEADERS}
        method = scope["method"] if scope["method"] in _METHODS else "HTTP"
        status = 0

        async def send_noting_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        with self._tracer.start_as_current_span(
            method,
            context=_W3C.extract(carrier, context=Context()),
            kind=SpanKind.SERVER,
            attributes={"http.request.method": method},
            record_exception=False,
            set_status_on_exception=False,
        ) as span:
            try:
                await app(scope, receive, send_noting_status)
            except BaseException as exc:
                _failed(span, exc)
                raise
            finally:
                # FastAPI's routes put themselves in the scope once matched.
                route = getattr(scope.get("route"), "path", None)
                if isinstance(route, str):
                    span.update_name(f"{method} {route}")
                    span.set_attribute("http.route", route)
                if status:
                    span.set_attribute("http.response.status_code", status)
                    if status >= 500:
                        span.set_status(Status(StatusCode.ERROR))
                if request_id := scope.get("state", {}).get("request_id"):
                    span.set_attribute("request.id", request_id)

    @contextmanager
    def job(self, job: JobTrace) -> Iterator[Span]:
        """One run of one job, in the trace of the request that queued it (a trace of its
        own when it was queued untraced)."""
        parent = Context()
        if job.parent is not None:
            parent = _W3C.extract({"traceparent": job.parent}, context=parent)
        with self._tracer.start_as_current_span(
            f"job {job.kind}",
            context=parent,
            kind=SpanKind.CONSUMER,
            attributes={"job.id": job.job_id, "job.kind": job.kind, "job.attempt": job.attempt},
            record_exception=False,
            set_status_on_exception=False,
        ) as span:
            try:
                yield span
            except BaseException as exc:
                _failed(span, exc)
                raise

    def job_outcome(self, span: Span, outcome: str) -> None:
        """`delivered`, or what kept the message from the relay (a `mail.faults.Fault`)."""
        span.set_attribute("job.outcome", outcome)
        if outcome != "delivered":
            span.set_status(Status(StatusCode.ERROR, outcome))

    @contextmanager
    def smtp_send(self, *, server: str, port: int) -> Iterator[None]:
        """The SMTP transaction of one message, with the relay's reply code."""
        with self._tracer.start_as_current_span(
            "smtp send",
            kind=SpanKind.CLIENT,
            attributes={"server.address": server, "server.port": port},
            record_exception=False,
            set_status_on_exception=False,
        ) as span:
            try:
                yield
            except BaseException as exc:
                # aiosmtplib's SMTPResponseException (and subclasses) carry the reply code.
                if isinstance(code := getattr(exc, "code", None), int):
                    span.set_attribute("smtp.reply_code", code)
                _failed(span, exc)
                raise
            # aiosmtplib returns only when the relay answered the DATA with a 250.
            span.set_attribute("smtp.reply_code", 250)


def _failed(span: Span, exc: BaseException) -> None:
    span.set_attribute("error.type", type(exc).__qualname__)
    span.set_status(Status(StatusCode.ERROR))
