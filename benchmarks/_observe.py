"""worker.py's ``--observe`` modes: the metrics and tracing middleware a measured worker
runs with."""

from __future__ import annotations

import argparse
from typing import Any

import werk

TRACINGS = ("noop", "unsampled", "sampled", "all")


def observers(app: werk.App, observe: str) -> list[werk.Middleware]:
    """The middleware of ``observe`` (``none``, ``metrics``, ``tracing:VARIANT``,
    ``both:VARIANT``), recording into a registry and spans of their own."""
    out: list[werk.Middleware] = []
    what, _, variant = observe.partition(":")
    if what in ("metrics", "both"):
        from prometheus_client import CollectorRegistry

        from werk.metrics import PrometheusMiddleware

        out.append(PrometheusMiddleware(app, registry=CollectorRegistry()))
    if what in ("tracing", "both"):
        from werk.tracing import TracingMiddleware

        out.append(TracingMiddleware(_tracer_provider(variant)))
    return out


def _tracer_provider(variant: str) -> Any:
    from opentelemetry.trace import NoOpTracerProvider

    if variant == "noop":
        return NoOpTracerProvider()
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult
    from opentelemetry.sdk.trace.sampling import ALWAYS_OFF, ParentBased, TraceIdRatioBased

    class Nowhere(SpanExporter):
        def export(self, spans: Any) -> SpanExportResult:
            return SpanExportResult.SUCCESS

    ratio = {"sampled": 0.01, "all": 1.0}.get(variant)
    sampler = ALWAYS_OFF if ratio is None else ParentBased(TraceIdRatioBased(ratio))
    provider = TracerProvider(sampler=sampler)
    provider.add_span_processor(BatchSpanProcessor(Nowhere()))
    return provider


def observe_mode(value: str) -> str:
    what, colon, variant = value.partition(":")
    if what in ("none", "metrics") and not colon:
        return value
    if what in ("tracing", "both") and (not colon or variant in TRACINGS):
        return value
    raise argparse.ArgumentTypeError(f"not a mode: {value!r}")


def modes(observe: list[str], tracings: list[str]) -> list[str]:
    """``none`` first, then each of ``observe``, tracing ones once per tracing variant
    unless they name theirs."""
    out = ["none"]
    for what in observe:
        wanted = [f"{what}:{v}" for v in tracings] if what in ("tracing", "both") else [what]
        out += [mode for mode in wanted if mode not in out]
    return out
