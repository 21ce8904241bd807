"""OpenTelemetry: a push and its run in one trace, and jobs pushed by jobs continuing it."""

from __future__ import annotations

from pathlib import Path

import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode
from tests.worker import traced_jobs
from tests.worker.helpers import running, wait_until

import werk
from werk.server import EmbeddedServer
from werk.tracing import TracingMiddleware


@pytest.fixture
def exporter() -> InMemorySpanExporter:
    return InMemorySpanExporter()


def _provider(exporter: InMemorySpanExporter) -> TracerProvider:
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider


def _one(spans: list[ReadableSpan], name: str) -> ReadableSpan:
    found = [s for s in spans if s.name == name]
    assert len(found) == 1, [s.name for s in spans]
    return found[0]


def test_push_and_run_share_a_trace_and_a_job_pushed_by_a_job_continues_it(
    server: EmbeddedServer, exporter: InMemorySpanExporter
) -> None:
    app = werk.App(url=server.url)
    app.add_middleware(TracingMiddleware(_provider(exporter)))
    seen: dict[str, str] = {}

    @app.job(retry=0)
    def child(n: int) -> None:
        raise ValueError(f"child {n} fails")

    @app.job(queue="other")
    def parent(n: int) -> None:
        seen["traceparent"] = werk.current_job().custom["traceparent"]
        child.push(n)

    jid = parent.push(7)
    push = _one(exporter.get_finished_spans(), "send parent")
    worker = werk.Worker(app, server.url, concurrency=2, queues=["other", "default"])
    with running(worker, server):
        wait_until(lambda: server.info()["processed"] == 2, timeout=30, what="both jobs")
        wait_until(lambda: len(exporter.get_finished_spans()) == 4, what="four spans")
    spans = list(exporter.get_finished_spans())
    run = _one(spans, "process parent")
    child_push = _one(spans, "send child")
    child_run = _one(spans, "process child")

    trace_id = push.context.trace_id
    assert {s.context.trace_id for s in spans} == {trace_id}  # one trace
    assert push.parent is None and push.kind is SpanKind.PRODUCER
    assert run.kind is SpanKind.CONSUMER and run.parent is not None
    assert run.parent.span_id == push.context.span_id  # the run continues its push
    assert child_push.parent is not None and child_push.parent.span_id == run.context.span_id
    assert child_run.parent is not None
    assert child_run.parent.span_id == child_push.context.span_id
    # The context travelled in the job: W3C traceparent of the push span.
    version_ids, flags = seen["traceparent"].rsplit("-", 1)
    assert version_ids == f"00-{trace_id:032x}-{push.context.span_id:016x}"
    assert int(flags, 16) & 1  # sampled

    assert push.attributes is not None and dict(push.attributes) == {
        "messaging.system": "faktory",
        "messaging.operation.name": "send",
        "messaging.destination.name": "other",
        "messaging.message.id": jid,
        "faktory.jobtype": "parent",
    }
    assert run.attributes is not None and run.attributes["messaging.message.id"] == jid
    assert run.attributes["faktory.retry_count"] == 0
    assert run.attributes["messaging.destination.name"] == "other"
    assert run.status.status_code is StatusCode.UNSET

    assert child_run.status.status_code is StatusCode.ERROR
    assert child_run.attributes is not None
    assert child_run.attributes["error.type"] == "ValueError"
    [event] = child_run.events
    assert event.name == "exception" and event.attributes is not None
    assert event.attributes["exception.message"] == "child 7 fails"


def test_a_failed_push_ends_its_span_with_an_error(exporter: InMemorySpanExporter) -> None:
    app = werk.App(url="tcp://127.0.0.1:1")  # nothing listens there
    app.add_middleware(TracingMiddleware(_provider(exporter)))

    @app.job
    def lost() -> None:
        pass

    with pytest.raises(werk.NetworkError):
        lost.push()
    assert not exporter.get_finished_spans()
    app.eager = True  # the next push (run here) ends the span the failed one left
    lost.push()
    failed, pushed = (s for s in exporter.get_finished_spans() if s.kind is SpanKind.PRODUCER)
    assert failed.status.status_code is StatusCode.ERROR
    assert pushed.status.status_code is not StatusCode.ERROR


@pytest.mark.slow
def test_a_job_pushed_from_a_child_process_stays_in_the_trace(
    server: EmbeddedServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAKTORY_URL", server.url)  # where the children push
    trace_id, span_id = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
    traceparent = f"00-{trace_id}-{span_id}-01"
    worker = werk.Worker(traced_jobs.app, server.url, concurrency=1, executor="process")
    with running(worker, server):
        with werk.Client(server.url) as client:
            client.push("relay", str(tmp_path), custom={"traceparent": traceparent}, retry=0)
        wait_until(lambda: server.info()["processed"] == 2, timeout=60, what="both jobs")
    # The child has no span of the run: the pushed job is parented to the relay's push.
    assert (tmp_path / "traceparent").read_text() == traceparent


TRACE, SPAN = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"


@pytest.mark.parametrize(
    ("custom", "parented", "state"),
    [
        ({"traceparent": f"00-{TRACE}-{SPAN}-01"}, True, ""),
        ({"traceparent": f"00-{TRACE}-{SPAN}-01", "tracestate": "k=v,o=1"}, True, "k=v,o=1"),
        ({"traceparent": f"  00-{TRACE}-{SPAN}-01"}, True, ""),  # the propagator's leniency
        ({"traceparent": f"00-{TRACE.upper()}-{SPAN}-01"}, False, ""),
        ({"traceparent": f"00-{'0' * 32}-{SPAN}-01"}, False, ""),
        ({"traceparent": f"ff-{TRACE}-{SPAN}-01"}, False, ""),
        ({"traceparent": 42}, False, ""),
    ],
)
def test_a_run_continues_the_trace_context_its_job_carries_as_the_w3c_propagator_reads_it(
    server: EmbeddedServer,
    exporter: InMemorySpanExporter,
    custom: dict[str, object],
    parented: bool,
    state: str,
) -> None:
    app = werk.App(url=server.url)
    app.add_middleware(TracingMiddleware(_provider(exporter)))

    @app.job(retry=0)
    def carried() -> None:
        pass

    with werk.Client(server.url) as client:
        client.push("carried", custom=custom)
    with running(werk.Worker(app, server.url, concurrency=1), server):
        wait_until(lambda: len(exporter.get_finished_spans()) == 1, what="the run's span")
    [run] = exporter.get_finished_spans()
    if parented:
        assert run.parent is not None and run.parent.is_remote
        assert (run.context.trace_id, run.parent.span_id) == (int(TRACE, 16), int(SPAN, 16))
        assert run.context.trace_state.to_header() == state
    else:
        assert run.parent is None and run.context.trace_id != int(TRACE, 16)


def test_without_an_sdk_runs_pass_the_context_on_and_cost_no_bookkeeping(
    server: EmbeddedServer, tmp_path: Path
) -> None:
    app = werk.App(url=server.url)
    tracing = TracingMiddleware()  # the API's no-op tracer provider
    app.add_middleware(tracing)
    seen: list[object] = []

    @app.job(retry=0)
    def inner() -> None:
        seen.append(werk.current_job().custom.get("traceparent"))

    @app.job(retry=0)
    def outer() -> None:
        inner.push()

    with werk.Client(server.url) as client:
        client.push("outer")  # no context: nothing to pass on
        client.push("outer", custom={"traceparent": f"00-{TRACE}-{SPAN}-01"})
    with running(werk.Worker(app, server.url, concurrency=1), server):
        wait_until(lambda: len(seen) == 2, what="both inner jobs")
    assert sorted(seen, key=str) == [f"00-{TRACE}-{SPAN}-01", None]
    assert not tracing._runs
