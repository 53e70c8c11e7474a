"""Traces (optional, `observability.tracing`): a registration through a real uvicorn is one
trace, request span → job span → SMTP send span, sent over OTLP/HTTP to a collector run by
the test; with traces off nothing is set up, imported or stored."""

import os
import secrets
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from backend.devstack import REPO_ROOT
from backend.devstack.app_process import AppProcess
from backend.observability import tracing
from backend.settings import Settings
from tests.support.app_client import app_client
from tests.support.helpers import jobs_settled, rows, user_json
from tests.support.mailhog import MailHog


@dataclass(frozen=True)
class Span:
    service: str
    trace_id: str
    span_id: str
    parent_id: str
    name: str
    kind: str
    attributes: dict[str, Any]
    error: bool


class Collector:
    """An OTLP/HTTP trace receiver: keeps what the exporter posts to /v1/traces."""

    def __init__(self) -> None:
        self.posts: list[tuple[str, str, bytes]] = []
        posts = self.posts

        class Receive(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                posts.append((self.path, self.headers.get("Content-Type", ""), body))
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Receive)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def spans(self) -> list[Span]:
        from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
            ExportTraceServiceRequest,
        )
        from opentelemetry.proto.trace.v1.trace_pb2 import Span as ProtoSpan
        from opentelemetry.proto.trace.v1.trace_pb2 import Status

        found = []
        for path, content_type, body in self.posts:
            assert (path, content_type) == ("/v1/traces", "application/x-protobuf")
            for resource_spans in ExportTraceServiceRequest.FromString(body).resource_spans:
                resource = _attributes(resource_spans.resource.attributes)
                for scope_spans in resource_spans.scope_spans:
                    for span in scope_spans.spans:
                        found.append(
                            Span(
                                service=resource["service.name"],
                                trace_id=span.trace_id.hex(),
                                span_id=span.span_id.hex(),
                                parent_id=span.parent_span_id.hex(),
                                name=span.name,
                                kind=ProtoSpan.SpanKind.Name(span.kind),
                                attributes=_attributes(span.attributes),
                                error=span.status.code == Status.STATUS_CODE_ERROR,
                            )
                        )
        return found


def _attributes(pairs: Any) -> dict[str, Any]:
    return {pair.key: getattr(pair.value, pair.value.WhichOneof("value")) for pair in pairs}


@pytest.fixture
def collector(monkeypatch: pytest.MonkeyPatch) -> Iterator[Collector]:
    """A collector, and the OTel variables that point the app processes started here at it."""
    pytest.importorskip("opentelemetry.sdk", reason="the otel extra is not installed")
    collector = Collector()
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", collector.url)
    monkeypatch.setenv("OTEL_SERVICE_NAME", "welcome-mail-test")
    yield collector
    collector.close()


def traceparent() -> tuple[str, str, str]:
    """A caller's trace id and span id, and the `traceparent` header that carries them."""
    trace_id, span_id = secrets.token_hex(16), secrets.token_hex(8)
    return trace_id, span_id, f"00-{trace_id}-{span_id}-01"


async def test_a_registration_is_one_trace_from_the_request_to_the_smtp_send(
    collector: Collector, settings: Settings, mailhog: MailHog, engine: AsyncEngine
) -> None:
    caller_trace, caller_span, header = traceparent()
    with AppProcess(settings) as app:
        async with httpx.AsyncClient(base_url=app.url, timeout=30) as http:
            answer = await http.post(
                "/api/register", json=user_json("ada"), headers={"traceparent": header}
            )
            assert answer.status_code == 201, answer.text
            [welcome] = await mailhog.wait_for(1)
            # The resend queues its jobs in SQL of its own: they continue its trace too.
            resend_trace, _, resend_header = traceparent()
            resent = await http.post(
                "/api/verification/resend",
                json={"email": "ada@example.com"},
                headers={"traceparent": resend_header},
            )
            assert resent.status_code == 202
            await mailhog.wait_for(2)
        await jobs_settled(engine)
        # A graceful stop flushes the spans the batch processor still holds.
        app.terminate()

    user_id = str(answer.json()["id"])
    jobs = await rows(engine, "SELECT id, kind, attempts, trace_context FROM jobs ORDER BY id")
    assert [job["kind"] for job in jobs] == [
        *("email.welcome", "audit.write", "email.verification", "audit.write")
    ]
    spans = collector.spans()
    assert {span.service for span in spans} == {"welcome-mail-test"}

    # The registration's trace: the caller's, continued.
    ours = [span for span in spans if span.trace_id == caller_trace]
    [request] = [span for span in ours if span.kind == "SPAN_KIND_SERVER"]
    assert (request.name, request.parent_id) == ("POST /api/register", caller_span)
    assert request.attributes == {
        "http.request.method": "POST",
        "http.route": "/api/register",
        "http.response.status_code": 201,
        "request.id": answer.headers["x-request-id"],
    }
    # Stored with both jobs the request queued: the request span's context.
    assert jobs[0]["trace_context"] == jobs[1]["trace_context"]
    assert jobs[0]["trace_context"] == f"00-{caller_trace}-{request.span_id}-01"

    [job] = [span for span in ours if span.kind == "SPAN_KIND_CONSUMER"]
    assert (job.name, job.parent_id, job.error) == ("job email.welcome", request.span_id, False)
    assert job.attributes == {
        "job.id": jobs[0]["id"],
        "job.kind": "email.welcome",
        "job.attempt": 1,
        "job.outcome": "delivered",
    }
    [smtp] = [span for span in ours if span.kind == "SPAN_KIND_CLIENT"]
    assert (smtp.name, smtp.parent_id, smtp.error) == ("smtp send", job.span_id, False)
    assert smtp.attributes == {
        "server.address": settings.mail_server,
        "server.port": settings.mail_port,
        "smtp.reply_code": 250,
    }
    assert len(ours) == 3, ours

    # The resend's trace: request → job → send, from the ids its SQL stored.
    theirs = {span.kind: span for span in spans if span.trace_id == resend_trace}
    assert theirs.keys() == {"SPAN_KIND_SERVER", "SPAN_KIND_CONSUMER", "SPAN_KIND_CLIENT"}
    assert jobs[2]["trace_context"] == (
        f"00-{resend_trace}-{theirs['SPAN_KIND_SERVER'].span_id}-01"
    )
    assert theirs["SPAN_KIND_CONSUMER"].attributes["job.id"] == jobs[2]["id"]
    assert theirs["SPAN_KIND_CONSUMER"].parent_id == theirs["SPAN_KIND_SERVER"].span_id
    assert theirs["SPAN_KIND_CLIENT"].parent_id == theirs["SPAN_KIND_CONSUMER"].span_id

    # The spans name the work, never the person.
    for span in spans:
        for value in span.attributes.values():
            assert "ada@example.com" not in str(value) and user_id not in str(value), span
    assert welcome.to == ["ada@example.com"]


async def test_a_request_without_traceparent_starts_a_trace_of_its_own(
    collector: Collector, settings: Settings, mailhog: MailHog, engine: AsyncEngine
) -> None:
    with AppProcess(settings) as app:
        async with httpx.AsyncClient(base_url=app.url, timeout=30) as http:
            answer = await http.post("/api/register", json=user_json("bob"))
            assert answer.status_code == 201
        await mailhog.wait_for(1)
        await jobs_settled(engine)
        app.terminate()

    spans = collector.spans()
    [request] = [span for span in spans if span.name == "POST /api/register"]
    assert request.parent_id == ""
    chain = [span for span in spans if span.trace_id == request.trace_id]
    assert sorted(span.name for span in chain) == [
        "POST /api/register",
        "job email.welcome",
        "smtp send",
    ]


async def test_with_traces_off_nothing_is_set_up_or_stored(
    settings: Settings, mailhog: MailHog, engine: AsyncEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("OTEL_EXPORTER_OTLP_ENDPOINT", raising=False)
    async with app_client(settings) as http:
        assert tracing.active is None
        answer = await http.post("/api/register", json=user_json("carol"))
        assert answer.status_code == 201
        resent = await http.post("/api/verification/resend", json={"email": "carol@example.com"})
        assert resent.status_code == 202
    assert len(await mailhog.wait_for(2)) == 2
    jobs = await rows(engine, "SELECT kind, status, trace_context FROM jobs ORDER BY id")
    assert len(jobs) == 4
    assert {(job["status"], job["trace_context"]) for job in jobs} == {("succeeded", None)}


def test_with_traces_off_the_otel_sdk_is_not_even_imported() -> None:
    """Checked in a process of its own: other tests of this one may import OTel modules."""
    code = (
        "import sys, backend.main\n"
        "from backend.observability import tracing\n"
        "assert not tracing.start() and tracing.active is None\n"
        "print(sorted(m for m in sys.modules if m.startswith(('opentelemetry.sdk', "
        "'opentelemetry.exporter', 'backend.observability.otel'))))\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "OTEL_EXPORTER_OTLP_ENDPOINT"}
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO_ROOT, env=env, capture_output=True, text=True
    )
    assert (done.returncode, done.stdout, done.stderr) == (0, "[]\n", "")
