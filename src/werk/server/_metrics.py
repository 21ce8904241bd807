# Prometheus figures of a running server (the ``metrics`` extra): a collector that reads the
# server's state when scraped, in a registry of the server's own (never the global one), the
# page on the web UI (/metrics) and a bare HTTP listener for `werk server --metrics-bind`.
#
#   werk_server_queue_jobs{queue}              gauge      jobs waiting in each queue
#   werk_server_queue_latency_seconds{queue}   gauge      age of each queue's oldest job
#   werk_server_set_jobs{set}                  gauge      scheduled, retries, dead, working
#   werk_server_jobs_processed_total           counter    ACKs and FAILs (total_processed)
#   werk_server_jobs_failed_total              counter    FAILs and expiries (total_failures)
#   werk_server_connections                    gauge      client connections open
#   werk_server_workers                        gauge      worker processes heartbeating
#   werk_server_commands_total{verb}           counter    commands run, by verb
#   werk_server_storage_write_seconds          histogram  each group commit's journal write
#   werk_server_uptime_seconds                 gauge      since the server started
#   ...                                                   what extensions report
#                                                         (Extension.metric_samples)
#
# Everything runs on the server's event loop: the collector reads plain counts, and the
# only per-command work is the dispatcher's count by verb (ServerStats.verbs).

from __future__ import annotations

import asyncio
import contextlib
import logging
import weakref
from collections.abc import Iterator
from typing import Any

from werk._errors import ConfigurationError
from werk.server import _admin as admin
from werk.server._embedded import EmbeddedServer
from werk.server._extension import Extension, MetricSample
from werk.server._server import Server

__all__ = [
    "CONTENT_TYPE",
    "MISSING",
    "ServerMetrics",
    "metrics_for",
    "metrics_page",
    "serve_metrics",
]

log = logging.getLogger("werk.server.metrics")

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
MISSING = "metrics need prometheus_client: pip install 'werk[metrics]'\n"

# A group commit writes one journal record: usually well under a millisecond, more when
# the disk syncs (synchronous=FULL) or a big PUSHB lands.
WRITE_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 2.5)

_BY_SERVER: weakref.WeakKeyDictionary[Server, ServerMetrics] = weakref.WeakKeyDictionary()


class ServerMetrics:
    """A started server's figures in a registry of its own; :meth:`exposition` is the page."""

    def __init__(self, server: Server) -> None:
        try:
            from prometheus_client import CollectorRegistry, Histogram
        except ImportError as exc:
            raise ConfigurationError(MISSING.strip()) from exc
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(_collector(server))
        self.writes = Histogram(
            "werk_server_storage_write_seconds",
            "Time to write each group commit to the journal, in seconds (SQLite storage).",
            registry=self.registry,
            buckets=WRITE_BUCKETS,
        )
        if hasattr(server.storage, "observe_commit"):
            server.storage.observe_commit = self.writes.observe

    def exposition(self) -> bytes:
        """The Prometheus text format of every figure, read now."""
        from prometheus_client import generate_latest

        return bytes(generate_latest(self.registry))


def metrics_for(server: Any) -> ServerMetrics:
    """The metrics of a started :class:`Server` (or EmbeddedServer), made on first use;
    ConfigurationError without prometheus_client."""
    if isinstance(server, EmbeddedServer):
        server = server.server
    metrics = _BY_SERVER.get(server)
    if metrics is None:
        metrics = _BY_SERVER[server] = ServerMetrics(server)
    return metrics


def metrics_page(server: Any) -> tuple[int, bytes, str]:
    """``(status, body, content type)`` of ``/metrics``: 503 and how to install the
    ``metrics`` extra when prometheus_client is missing."""
    try:
        metrics = metrics_for(server)
    except ConfigurationError:
        return 503, MISSING.encode(), "text/plain; charset=utf-8"
    return 200, metrics.exposition(), CONTENT_TYPE


def _collector(server: Server) -> Any:
    from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
    from prometheus_client.registry import Collector

    gauge, counter = GaugeMetricFamily, CounterMetricFamily

    class ServerCollector(Collector):
        def collect(self) -> Iterator[Any]:
            m = server.manager
            if m is None:  # not started
                return
            sizes = m.queue_sizes()
            queued = gauge(
                "werk_server_queue_jobs", "Jobs waiting in each queue.", labels=["queue"]
            )
            for name, size in sizes.items():
                queued.add_metric([name], size)
            yield queued
            latency = gauge(
                "werk_server_queue_latency_seconds",
                "Seconds since the oldest job of each queue was enqueued (0: empty queue).",
                labels=["queue"],
            )
            for name, seconds in admin.latency(m, list(sizes)).items():
                latency.add_metric([name], max(0.0, float(seconds)))
            yield latency
            sets = gauge("werk_server_set_jobs", "Jobs in each set.", labels=["set"])
            for name, members in (
                ("scheduled", m.scheduled),
                ("retries", m.retries),
                ("dead", m.dead),
                ("working", m.working),
            ):
                sets.add_metric([name], len(members))
            yield sets
            counters = m.counters
            yield counter(
                "werk_server_jobs_processed",
                "Jobs finished: ACKed, FAILed or expired (INFO total_processed; FLUSH resets it).",
                value=counters.get("processed", 0),
            )
            yield counter(
                "werk_server_jobs_failed",
                "Jobs FAILed or whose reservation expired (INFO total_failures; FLUSH resets it).",
                value=counters.get("failures", 0),
            )
            stats = server.stats
            yield gauge(
                "werk_server_connections", "Client connections open.", value=stats.connections
            )
            yield gauge(
                "werk_server_workers", "Worker processes known to the server.", value=len(m.workers)
            )
            commands = counter("werk_server_commands", "Commands run, by verb.", labels=["verb"])
            for verb, count in stats.verbs.items():
                commands.add_metric([verb.decode("ascii", "replace")], count)
            yield commands
            yield gauge(
                "werk_server_uptime_seconds",
                "Seconds since the server started.",
                value=max(0.0, server.clock.now() - stats.started),
            )
            yield from _extension_families(server.extensions)

    return ServerCollector()


def _extension_families(extensions: tuple[Extension, ...]) -> Iterator[Any]:
    from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

    families: dict[str, tuple[Any, tuple[str, ...]]] = {}
    for ext in extensions:
        if type(ext).metric_samples is Extension.metric_samples:
            continue
        try:
            samples = list(ext.metric_samples())
        except Exception:
            log.exception("%s.metric_samples raised; its figures are left out", type(ext).__name__)
            continue
        for sample in samples:
            if not isinstance(sample, MetricSample) or sample.kind not in ("gauge", "counter"):
                log.warning("%s reported %r: not a gauge or counter", type(ext).__name__, sample)
                continue
            keys = tuple(sorted(sample.labels))
            entry = families.get(sample.name)
            if entry is None:
                kind = GaugeMetricFamily if sample.kind == "gauge" else CounterMetricFamily
                entry = families[sample.name] = (kind(sample.name, sample.help, labels=keys), keys)
            family, wanted = entry
            if keys != wanted or family.type != sample.kind:
                log.warning("%r does not match the other samples of its name; left out", sample)
                continue
            family.add_metric([str(sample.labels[k]) for k in keys], sample.value)
    for family, _ in families.values():
        yield family


async def serve_metrics(server: Server, host: str, port: int) -> asyncio.Server:
    """Answer ``GET /metrics`` on ``host:port`` (the server's event loop; no other page, no
    password: bind it where only the scraper reaches)."""
    metrics_for(server)  # ConfigurationError now, rather than at each scrape

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
            method, _, rest = head.partition(b" ")
            path = rest.split(b" ", 1)[0].split(b"?", 1)[0]
            if method not in (b"GET", b"HEAD"):
                status, body, ctype = 405, b"GET /metrics\n", "text/plain; charset=utf-8"
            elif path != b"/metrics":
                status, body, ctype = 404, b"not found: try /metrics\n", "text/plain; charset=utf-8"
            else:
                status, body, ctype = metrics_page(server)
            reason = {200: "OK", 404: "Not Found", 405: "Method Not Allowed"}.get(
                status, "Service Unavailable"
            )
            writer.write(
                f"HTTP/1.1 {status} {reason}\r\nContent-Type: {ctype}\r\n"
                f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode()
            )
            if method != b"HEAD":
                writer.write(body)
            await writer.drain()
        except (
            asyncio.IncompleteReadError,
            asyncio.LimitOverrunError,
            asyncio.TimeoutError,
            OSError,
        ):
            pass  # a client that sent no whole request, or left: nothing to answer
        finally:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()

    return await asyncio.start_server(answer, host, port, reuse_address=True)
