"""OpenTelemetry traces across push and run (the ``tracing`` extra:
``pip install werk[tracing]``).

:class:`TracingMiddleware` opens a PRODUCER span around each push and writes its W3C
trace context into the job's ``custom`` hash (``traceparent``, and ``tracestate`` when
there is one), so the context travels with the job through Faktory, whatever the language
of the worker. Around each run it opens a CONSUMER span, child of the push, and makes it
current while the handler runs: jobs the handler pushes continue the same trace.

Span attributes: ``messaging.system`` (``faktory``), ``messaging.operation.name``
(``send`` or ``process``), ``messaging.destination.name`` (the queue),
``messaging.message.id`` (the jid), ``faktory.jobtype``, and on runs
``faktory.retry_count``. A run that raises ends with status ERROR, the exception recorded
and ``error.type`` set (the child's error type with the process executor).

With the process executor the handler runs in a child process, which sees no span of its
parent: a job it pushes (with this middleware on the app in the child too) is parented to
the push of the running job, taken from its ``custom`` hash, so it stays in the trace.

The trace context is written and read directly as W3C ``traceparent`` (the propagator
machinery is only used for what the fast path does not parse: other versions, a
``tracestate``), and a run whose span is invalid (no SDK configured: the API's no-op
tracer) is neither made current nor remembered, so tracing that records nothing costs
little.

Example::

    from werk.tracing import TracingMiddleware

    app.add_middleware(TracingMiddleware())   # the global tracer provider
"""

from __future__ import annotations

import re
import threading
from collections.abc import Mapping
from contextvars import Token
from typing import Any

try:
    from opentelemetry import context as otel_context
    from opentelemetry import trace
    from opentelemetry.context import Context
    from opentelemetry.trace import (
        NonRecordingSpan,
        Span,
        SpanContext,
        SpanKind,
        Status,
        StatusCode,
        TraceFlags,
    )
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError("werk.tracing needs opentelemetry-api: pip install 'werk[tracing]'") from exc

from werk._job import Job
from werk._version import __version__
from werk.worker import JobContext, Middleware, RemoteJobError
from werk.worker._context import CURRENT

__all__ = ["TracingMiddleware"]

_W3C = TraceContextTextMapPropagator()
_FIELDS = ("traceparent", "tracestate")
# Version 00 exactly as the W3C propagator accepts it; anything else goes through it.
_TRACEPARENT = re.compile(r"00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})")
_EMPTY = Context()
_get_current_span = trace.get_current_span
_set_span_in_context = trace.set_span_in_context
_attach = otel_context.attach
_PRODUCER, _CONSUMER = SpanKind.PRODUCER, SpanKind.CONSUMER


class TracingMiddleware(Middleware):
    """PRODUCER spans around pushes, CONSUMER spans around runs, linked through the job's
    ``custom["traceparent"]`` (see the module).

    ``tracer_provider`` defaults to the global one (``trace.set_tracer_provider``).

    Example::

        provider = TracerProvider()
        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
        app.add_middleware(TracingMiddleware(provider))
    """

    def __init__(self, tracer_provider: trace.TracerProvider | None = None) -> None:
        tracer = trace.get_tracer("werk", __version__, tracer_provider=tracer_provider)
        self._start_span = tracer.start_span
        # A push is synchronous on its thread: one pending push span per thread. A push
        # that raised never reaches after_push; the next push of the thread ends its span.
        self._pushing = threading.local()
        # jid -> (span, context token) of the runs in progress.
        self._runs: dict[str, tuple[Span, Token[Context]]] = {}

    # -- push ---------------------------------------------------------------------------
    def before_push(self, job: Job) -> None:
        """Open the push's span and write its trace context into ``job.custom``."""
        pushing = self._pushing
        if getattr(pushing, "span", None) is not None:
            _end_failed_push(pushing)
        parent = None  # the current context ...
        if not _get_current_span().get_span_context().is_valid:
            running = CURRENT.get(None)  # ... or, with none, the running job's push
            if running is not None and running.job.custom:
                parent = _parent(running.job.custom)
        jobtype = job.jobtype
        span = self._start_span(
            f"send {jobtype}",
            parent,
            _PRODUCER,
            {
                "messaging.system": "faktory",
                "messaging.operation.name": "send",
                "messaging.destination.name": job.queue,
                "messaging.message.id": job.jid,
                "faktory.jobtype": jobtype,
            },
        )
        sc = span.get_span_context()
        if sc.is_valid:
            custom = job.custom
            if custom:
                custom = dict(custom)
                for field in _FIELDS:
                    custom.pop(field, None)  # a stale context must not outlive this push
            else:
                custom = {}
            custom["traceparent"] = _traceparent(sc)
            if sc.trace_state:
                custom["tracestate"] = sc.trace_state.to_header()
            job.custom = custom
        pushing.span = (job.jid, span)

    def after_push(self, job: Job) -> None:
        """End the push's span."""
        pending = getattr(self._pushing, "span", None)
        if pending is not None and pending[0] == job.jid:
            self._pushing.span = None
            pending[1].end()

    # -- run ----------------------------------------------------------------------------
    def before_process(self, ctx: JobContext) -> None:
        """Open the run's span, child of the push, and make it current."""
        job = ctx.job
        custom: Any = job.custom
        parent = _parent(custom) if custom and "traceparent" in custom else None
        jobtype = job.jobtype
        span = self._start_span(
            f"process {jobtype}",
            parent,
            _CONSUMER,
            {
                "messaging.system": "faktory",
                "messaging.operation.name": "process",
                "messaging.destination.name": job.queue,
                "messaging.message.id": job.jid,
                "faktory.jobtype": jobtype,
                "faktory.retry_count": ctx.retry_count,
            },
        )
        if span.get_span_context().is_valid:
            # An invalid span (the API's no-op tracer) has nothing to pass on or to end.
            self._runs[job.jid] = (span, _attach(_set_span_in_context(span)))

    def after_process(self, ctx: JobContext, duration: float) -> None:
        """End the run's span."""
        run = self._runs.pop(ctx.job.jid, None)
        if run is not None:
            _end(*run)  # status left UNSET, as OpenTelemetry advises for success

    def on_failure(self, ctx: JobContext, error: BaseException, duration: float) -> None:
        """End the run's span with status ERROR and the exception."""
        run = self._runs.pop(ctx.job.jid, None)
        if run is not None:
            span, token = run
            errtype = error.errtype if isinstance(error, RemoteJobError) else None
            span.set_attribute("error.type", errtype or type(error).__name__)
            span.record_exception(error)
            span.set_status(Status(StatusCode.ERROR, str(error)))
            _end(span, token)


def _traceparent(sc: SpanContext) -> str:
    # What the W3C propagator writes, without building a context to hand it.
    return f"00-{sc.trace_id:032x}-{sc.span_id:016x}-{sc.trace_flags:02x}"


def _parent(custom: Mapping[str, Any]) -> Context:
    """The context of the push whose trace context ``custom`` carries."""
    header = custom.get("traceparent")
    if not isinstance(header, str):
        return _EMPTY  # not a context at all: the run starts a trace
    match = _TRACEPARENT.fullmatch(header)
    if match is None or "tracestate" in custom:
        return _W3C.extract(custom)
    trace_id, span_id = int(match[1], 16), int(match[2], 16)
    if not (trace_id and span_id):
        return _W3C.extract(custom)  # all zeros: invalid, the propagator says what then
    parent = SpanContext(trace_id, span_id, True, TraceFlags(int(match[3], 16)))
    return _set_span_in_context(NonRecordingSpan(parent), _EMPTY)


def _end(span: Span, token: Token[Context]) -> None:
    try:
        otel_context.detach(token)
    finally:
        span.end()


def _end_failed_push(pushing: threading.local) -> None:
    pending = pushing.span
    pushing.span = None
    span = pending[1]
    span.set_status(Status(StatusCode.ERROR, "the push failed"))
    span.end()
