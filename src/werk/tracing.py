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

Example::

    from werk.tracing import TracingMiddleware

    app.add_middleware(TracingMiddleware())   # the global tracer provider
"""

from __future__ import annotations

import threading
from contextvars import Token
from typing import Any

try:
    from opentelemetry import context as otel_context
    from opentelemetry import trace
    from opentelemetry.context import Context
    from opentelemetry.trace import Span, SpanKind, Status, StatusCode
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
        self._tracer = trace.get_tracer("werk", __version__, tracer_provider=tracer_provider)
        # A push is synchronous on its thread: one pending push span per thread. A push
        # that raised never reaches after_push; the next push of the thread ends its span.
        self._pushing = threading.local()
        # jid -> (span, context token) of the runs in progress.
        self._runs: dict[str, tuple[Span, Token[Context]]] = {}

    def _start(
        self, operation: str, jobtype: str, queue: str, jid: str, parent: Context | None
    ) -> Span:
        # Both ends of a job share the semantic conventions for messaging spans: a push
        # is a producer "send", a run a consumer "process".
        return self._tracer.start_span(
            f"{operation} {jobtype}",
            context=parent,
            kind=SpanKind.PRODUCER if operation == "send" else SpanKind.CONSUMER,
            attributes={
                "messaging.system": "faktory",
                "messaging.operation.name": operation,
                "messaging.destination.name": queue,
                "messaging.message.id": jid,
                "faktory.jobtype": jobtype,
            },
        )

    # -- push ---------------------------------------------------------------------------
    def before_push(self, job: Job) -> None:
        """Open the push's span and write its trace context into ``job.custom``."""
        _end_failed_push(self._pushing)
        parent = None  # the current context ...
        if not trace.get_current_span().get_span_context().is_valid:
            running = CURRENT.get(None)  # ... or, with none, the running job's push
            if running is not None and running.job.custom:
                parent = _W3C.extract(running.job.custom)
        span = self._start("send", job.jobtype, job.queue, job.jid, parent)
        carrier: dict[str, str] = {}
        _W3C.inject(carrier, context=trace.set_span_in_context(span))
        if carrier:
            custom = dict(job.custom or {})
            for name in _FIELDS:
                custom.pop(name, None)  # a stale context must not outlive this push
            custom.update(carrier)
            job.custom = custom
        self._pushing.span = (job.jid, span)

    def after_push(self, job: Job) -> None:
        """End the push's span."""
        pending = getattr(self._pushing, "span", None)
        if pending is not None and pending[0] == job.jid:
            self._pushing.span = None
            pending[1].end()

    # -- run ----------------------------------------------------------------------------
    def before_process(self, ctx: JobContext) -> None:
        """Open the run's span, child of the push, and make it current."""
        custom: Any = ctx.job.custom
        parent = _W3C.extract(custom) if custom and "traceparent" in custom else None
        span = self._start("process", ctx.jobtype, ctx.queue, ctx.jid, parent)
        span.set_attribute("faktory.retry_count", ctx.retry_count)
        token = otel_context.attach(trace.set_span_in_context(span))
        self._runs[ctx.jid] = (span, token)

    def after_process(self, ctx: JobContext, duration: float) -> None:
        """End the run's span."""
        run = self._runs.pop(ctx.jid, None)
        if run is not None:
            _end(*run)  # status left UNSET, as OpenTelemetry advises for success

    def on_failure(self, ctx: JobContext, error: BaseException, duration: float) -> None:
        """End the run's span with status ERROR and the exception."""
        run = self._runs.pop(ctx.jid, None)
        if run is not None:
            span, token = run
            errtype = error.errtype if isinstance(error, RemoteJobError) else None
            span.set_attribute("error.type", errtype or type(error).__name__)
            span.record_exception(error)
            span.set_status(Status(StatusCode.ERROR, str(error)))
            _end(span, token)


def _end(span: Span, token: Token[Context]) -> None:
    try:
        otel_context.detach(token)
    finally:
        span.end()


def _end_failed_push(pushing: threading.local) -> None:
    pending = getattr(pushing, "span", None)
    if pending is not None:
        pushing.span = None
        span = pending[1]
        span.set_status(Status(StatusCode.ERROR, "the push failed"))
        span.end()
