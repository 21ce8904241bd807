"""Prometheus metrics for a worker (the ``metrics`` extra: ``pip install werk[metrics]``).

:class:`PrometheusMiddleware` counts the jobs a worker runs; ``werk worker --metrics-port
9191`` adds it and serves ``/metrics`` with prometheus_client's own HTTP server.

=================================  =========  =====================================================
``werk_jobs_total``                counter    jobs run, by ``jobtype``, ``queue``, ``outcome``
                                              (``success``: ACKed, ``failure``: FAILed)
``werk_job_duration_seconds``      histogram  how long handlers ran, by ``jobtype``, ``queue``
``werk_jobs_in_progress``          gauge      handlers running now
``werk_slots``                     gauge      fetch slots of the worker (its concurrency)
``werk_fetch_duration_seconds``    histogram  FETCH round trips, by ``outcome`` (``job``: it
                                              brought one, ``empty``: the server held it up to
                                              2 s and had none)
``werk_unknown_jobs_total``        counter    jobs FAILed unrun: no handler for their type, by
                                              ``queue`` (the type is not a label)
``werk_outages_total``             counter    times the worker lost the server
``werk_outage_seconds_total``      counter    seconds spent without the server
=================================  =========  =====================================================

Jobs of a type the app does not register never run, so no middleware sees them; they are
counted by ``werk_unknown_jobs_total`` per queue, and a stray job type cannot grow the
number of series (``jobtype="unknown"`` guards the job counters the same way, should an
unregistered type reach them). The hooks run in the worker process whatever the
executor, so with ``--executor process`` the figures cover the jobs of every child.

Example::

    from prometheus_client import start_http_server
    from werk.metrics import PrometheusMiddleware

    app.add_middleware(PrometheusMiddleware(app))
    start_http_server(9191)
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import TYPE_CHECKING

try:
    from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram
    from prometheus_client.core import CounterMetricFamily, Metric
    from prometheus_client.registry import Collector
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError("werk.metrics needs prometheus_client: pip install 'werk[metrics]'") from exc

from werk.worker import App, JobContext, Middleware

if TYPE_CHECKING:
    from werk.worker import Worker

__all__ = ["UNKNOWN_JOBTYPE", "PrometheusMiddleware"]

UNKNOWN_JOBTYPE = "unknown"
"""The ``jobtype`` label of jobs whose type the app does not register."""

# Jobs last from milliseconds to many minutes.
DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900)
# A FETCH that finds a job takes a network round trip; an empty one waits up to 2 s.
FETCH_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 2.5, 5)


class PrometheusMiddleware(Middleware):
    """Counts a worker's jobs into Prometheus metrics (see the module for the list).

    ``app`` gives the registered job types (else those of the worker that starts with
    this middleware); ``registry`` defaults to prometheus_client's default registry, the
    one ``start_http_server`` serves.

    Example::

        registry = CollectorRegistry()
        app.add_middleware(PrometheusMiddleware(app, registry=registry))
    """

    def __init__(
        self,
        app: App | None = None,
        *,
        registry: CollectorRegistry | None = None,
        buckets: Sequence[float] = DURATION_BUCKETS,
    ) -> None:
        registry = REGISTRY if registry is None else registry
        self._known: Mapping[str, object] = app.jobs if app is not None else {}
        self.jobs = Counter(
            "werk_jobs",
            "Jobs run by this worker, by job type, queue and outcome (success or failure).",
            ("jobtype", "queue", "outcome"),
            registry=registry,
        )
        self.duration = Histogram(
            "werk_job_duration_seconds",
            "How long job handlers ran, in seconds.",
            ("jobtype", "queue"),
            registry=registry,
            buckets=tuple(buckets),
        )
        self.in_progress = Gauge(
            "werk_jobs_in_progress", "Job handlers running now.", registry=registry
        )
        self.slots = Gauge(
            "werk_slots", "Fetch slots of this worker (its concurrency).", registry=registry
        )
        self.fetch = Histogram(
            "werk_fetch_duration_seconds",
            "FETCH round trips in seconds, by outcome (job, or empty after the server's wait).",
            ("outcome",),
            registry=registry,
            buckets=FETCH_BUCKETS,
        )
        self._fetch_job = self.fetch.labels("job")
        self._fetch_empty = self.fetch.labels("empty")
        self._worker: Worker | None = None
        registry.register(_WorkerCollector(self))
        # (jobtype, queue) -> (success counter, failure counter, histogram): labels()
        # takes a lock and builds a key, once per series rather than once per job.
        self._series: dict[tuple[str, str], tuple[Counter, Counter, Histogram]] = {}

    def on_startup(self, worker: Worker) -> None:
        """Learn the worker's job types and slots; report its outages from now on."""
        self._known = worker.app.jobs
        self._worker = worker
        self.slots.set(worker.concurrency)

    def after_fetch(self, duration: float, found: bool) -> None:
        """Time a FETCH."""
        (self._fetch_job if found else self._fetch_empty).observe(duration)

    def before_process(self, ctx: JobContext) -> None:
        """One more handler running."""
        self.in_progress.inc()

    def after_process(self, ctx: JobContext, duration: float) -> None:
        """Count a success and its duration."""
        series = self._series.get((ctx.jobtype, ctx.queue)) or self._new_series(ctx)
        series[0].inc()
        series[2].observe(duration)
        self.in_progress.dec()

    def on_failure(self, ctx: JobContext, error: BaseException, duration: float) -> None:
        """Count a failure and its duration."""
        series = self._series.get((ctx.jobtype, ctx.queue)) or self._new_series(ctx)
        series[1].inc()
        series[2].observe(duration)
        self.in_progress.dec()

    def _new_series(self, ctx: JobContext) -> tuple[Counter, Counter, Histogram]:
        jobtype = ctx.jobtype if ctx.jobtype in self._known else UNKNOWN_JOBTYPE
        series = (
            self.jobs.labels(jobtype, ctx.queue, "success"),
            self.jobs.labels(jobtype, ctx.queue, "failure"),
            self.duration.labels(jobtype, ctx.queue),
        )
        if jobtype != UNKNOWN_JOBTYPE:
            # Unknown types are not cached: their names are not bounded, their series is.
            self._series[(ctx.jobtype, ctx.queue)] = series
        return series


class _WorkerCollector(Collector):
    """The worker's own figures (unknown jobs, outages), read when scraped."""

    def __init__(self, owner: PrometheusMiddleware) -> None:
        self._owner = owner

    def collect(self) -> Iterator[Metric]:
        worker = self._owner._worker
        unknown = CounterMetricFamily(
            "werk_unknown_jobs",
            "Jobs FAILed without running: the app has no handler for their type.",
            labels=("queue",),
        )
        for queue, count in sorted((worker.unknown_jobs if worker is not None else {}).items()):
            unknown.add_metric([queue], count)
        yield unknown
        outages = CounterMetricFamily("werk_outages", "Times this worker lost the Faktory server.")
        seconds = CounterMetricFamily(
            "werk_outage_seconds", "Seconds this worker spent without the Faktory server."
        )
        outages.add_metric([], worker.outages if worker is not None else 0)
        seconds.add_metric([], worker.outage_seconds if worker is not None else 0.0)
        yield outages
        yield seconds

    def describe(self) -> Iterator[Metric]:
        # Registering must not call collect() before a worker exists; the names suffice.
        yield CounterMetricFamily("werk_unknown_jobs", "")
        yield CounterMetricFamily("werk_outages", "")
        yield CounterMetricFamily("werk_outage_seconds", "")
