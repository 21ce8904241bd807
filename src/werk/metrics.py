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

A job's hooks only append to queues (no lock, no metric object); the queues are folded
into the figures when the registry is collected (a scrape), or by the job that finds
them long, a few thousand jobs at a time.

Example::

    from prometheus_client import start_http_server
    from werk.metrics import PrometheusMiddleware

    app.add_middleware(PrometheusMiddleware(app))
    start_http_server(9191)
"""

from __future__ import annotations

import bisect
import functools
import itertools
import math
import operator
import threading
import time
from collections import deque
from collections.abc import Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

try:
    import prometheus_client.metrics as _prometheus_metrics
    from prometheus_client import REGISTRY, CollectorRegistry, Gauge
    from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily, Metric
    from prometheus_client.registry import Collector
    from prometheus_client.utils import floatToGoString
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

_RUN_LABELS = ("jobtype", "queue")

FOLD_AT = 4096
"""Jobs a worker keeps unfolded at most (a worker nobody scrapes must not grow)."""

_T = TypeVar("_T")
_NEVER: Any = object()  # what popleft never returns
_key = operator.itemgetter(0, 1, 2)
_seconds = operator.itemgetter(3)


class PrometheusMiddleware(Middleware):
    """Counts a worker's jobs into Prometheus metrics (see the module for the list).

    ``app`` gives the registered job types (else those of the worker that starts with
    this middleware); ``registry`` defaults to prometheus_client's default registry, the
    one ``start_http_server`` serves. The middleware is one collector of that registry:
    collecting it (a scrape, ``registry.get_sample_value``) first folds in the jobs
    counted since; :meth:`flush` does only the fold.

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
        self.in_progress = Gauge(
            "werk_jobs_in_progress", "Job handlers running now.", registry=None
        )
        """Handlers running now (as of the last fold)."""
        self.slots = Gauge(
            "werk_slots", "Fetch slots of this worker (its concurrency).", registry=None
        )
        """The worker's fetch slots."""
        self._bounds = _bounds(buckets)
        self._worker: Worker | None = None
        # What the hooks record, each with one call into C that needs no lock (next() of
        # a count, append to a deque): runs begun, runs ended as (jobtype, queue,
        # succeeded, seconds), FETCH round trips.
        self._begun = itertools.count()
        self._ended: deque[tuple[str, str, bool, float]] = deque()
        self._fetched: deque[float] = deque()
        self._fetched_empty: deque[float] = deque()
        # What the folds made of them, under the lock.
        self._fold_lock = threading.Lock()
        self._folds = 0  # each fold reads _begun by taking a number of it
        self._ended_total = 0
        # (jobtype, queue) -> ([successes, failures], duration histogram)
        self._runs: dict[tuple[str, str], tuple[list[int], _Histogram]] = {}
        self._fetches = {
            "job": _Histogram(_bounds(FETCH_BUCKETS)),
            "empty": _Histogram(_bounds(FETCH_BUCKETS)),
        }
        registry.register(_Collector(self))

    def on_startup(self, worker: Worker) -> None:
        """Learn the worker's job types and slots; report its outages from now on."""
        self._known = worker.app.jobs
        self._worker = worker
        self.slots.set(worker.concurrency)

    def after_fetch(self, duration: float, found: bool) -> None:
        """Time a FETCH."""
        times = self._fetched if found else self._fetched_empty
        times.append(duration)
        if len(times) > FOLD_AT:
            self.flush()

    def before_process(self, ctx: JobContext) -> None:
        """One more handler running."""
        next(self._begun)

    def after_process(self, ctx: JobContext, duration: float) -> None:
        """Count a success and its duration."""
        job = ctx.job
        self._ended.append((job.jobtype, job.queue, True, duration))
        if len(self._ended) > FOLD_AT:
            self.flush()

    def on_failure(self, ctx: JobContext, error: BaseException, duration: float) -> None:
        """Count a failure and its duration."""
        job = ctx.job
        self._ended.append((job.jobtype, job.queue, False, duration))
        if len(self._ended) > FOLD_AT:
            self.flush()

    def flush(self) -> None:
        """Fold the jobs counted since the last fold into the figures a scrape reads.

        Example::

            metrics.flush()
        """
        with self._fold_lock:
            ended = _drain(self._ended)
            if ended:
                self._fold_runs(ended)
            self._fetches["job"].observe_many(_drain(self._fetched))
            self._fetches["empty"].observe_many(_drain(self._fetched_empty))
            # Read after the ends: every run counted as ended was counted as begun.
            begun = next(self._begun) - self._folds
            self._folds += 1
            self._ended_total += len(ended)
            self.in_progress.set(begun - self._ended_total)

    def _fold_runs(self, batch: list[tuple[str, str, bool, float]]) -> None:
        # Grouped in C when the batch has one kind of job (the usual case); the series
        # are made in the order their first jobs ended.
        keys = dict.fromkeys(map(_key, batch))
        if len(keys) == 1:
            groups = {next(iter(keys)): list(map(_seconds, batch))}
        else:
            groups = {key: [] for key in keys}
            for jobtype, queue, succeeded, seconds in batch:
                groups[(jobtype, queue, succeeded)].append(seconds)
        for (jobtype, queue, succeeded), values in groups.items():
            if jobtype not in self._known:
                jobtype = UNKNOWN_JOBTYPE
            series = self._runs.get((jobtype, queue))
            if series is None:
                series = self._runs[(jobtype, queue)] = ([0, 0], _Histogram(self._bounds))
            series[0][0 if succeeded else 1] += len(values)
            series[1].observe_many(values)

    def _families(self) -> Iterator[Metric]:
        created = getattr(_prometheus_metrics, "_use_created", True)
        jobs = CounterMetricFamily(
            "werk_jobs",
            "Jobs run by this worker, by job type, queue and outcome (success or failure).",
            labels=("jobtype", "queue", "outcome"),
        )
        durations = HistogramMetricFamily(
            "werk_job_duration_seconds",
            "How long job handlers ran, in seconds.",
            labels=_RUN_LABELS,
        )
        with self._fold_lock:
            for (jobtype, queue), (counts, histogram) in self._runs.items():
                when = histogram.created if created else None
                jobs.add_metric((jobtype, queue, "success"), float(counts[0]), created=when)
                jobs.add_metric((jobtype, queue, "failure"), float(counts[1]), created=when)
                histogram.add_to(durations, _RUN_LABELS, (jobtype, queue), created)
            fetch = HistogramMetricFamily(
                "werk_fetch_duration_seconds",
                "FETCH round trips in seconds, by outcome (job, or empty after the server's wait).",
                labels=("outcome",),
            )
            for outcome, histogram in self._fetches.items():
                histogram.add_to(fetch, ("outcome",), (outcome,), created)
        yield jobs
        yield durations
        yield from self.in_progress.collect()
        yield from self.slots.collect()
        yield fetch


def _drain(events: deque[_T]) -> list[_T]:
    # The events there now, each popped (atomic) in C: appends meanwhile wait for the next.
    return list(itertools.islice(iter(events.popleft, _NEVER), len(events)))


def _bounds(buckets: Sequence[float]) -> tuple[float, ...]:
    # The upper bounds as prometheus_client's Histogram takes them: sorted, +Inf last.
    bounds = [float(b) for b in buckets]
    if bounds != sorted(bounds):
        raise ValueError("buckets not in sorted order")
    if not bounds or bounds[-1] != math.inf:
        bounds.append(math.inf)
    if len(bounds) < 2:
        raise ValueError("must have at least two buckets")
    return tuple(bounds)


@functools.cache
def _les(bounds: tuple[float, ...]) -> tuple[str, ...]:
    # The "le" labels, spelled as prometheus_client spells them.
    return tuple(floatToGoString(b) for b in bounds)  # type: ignore[no-untyped-call]


class _Histogram:
    """One series of a histogram: counts per bucket, sum, and when it was created."""

    __slots__ = ("bounds", "counts", "created", "les", "total")

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self.bounds = bounds
        self.les = _les(bounds)
        self.counts = [0] * len(bounds)
        self.total = 0.0
        self.created = time.time()

    def observe_many(self, values: list[float]) -> None:
        """Count ``values`` (sorted here) into the buckets."""
        if not values:
            return
        self.total += sum(values)  # in the order observed, as one observe() at a time adds
        values.sort()
        counts, below = self.counts, 0
        for i, bound in enumerate(self.bounds):
            # A value equal to a bound belongs to that bound's bucket (le: less or equal).
            upto = bisect.bisect_right(values, bound)
            counts[i] += upto - below
            below = upto

    def add_to(
        self,
        family: HistogramMetricFamily,
        names: Sequence[str],
        labels: Sequence[str],
        created: bool,
    ) -> None:
        """Add this series' samples to ``family``, as prometheus_client's Histogram would."""
        cumulative: list[tuple[str, float]] = []
        acc = 0.0
        for le, count in zip(self.les, self.counts, strict=True):
            acc += count
            cumulative.append((le, acc))
        family.add_metric(labels, cumulative, self.total)
        if created:
            family.add_sample(
                family.name + "_created", dict(zip(names, labels, strict=True)), self.created
            )


class _Collector(Collector):
    """The middleware's figures and the worker's own (unknown jobs, outages), read when
    scraped."""

    def __init__(self, owner: PrometheusMiddleware) -> None:
        self._owner = owner

    def collect(self) -> Iterator[Metric]:
        owner = self._owner
        owner.flush()
        yield from owner._families()
        worker = owner._worker
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
        yield CounterMetricFamily("werk_jobs", "")
        yield HistogramMetricFamily("werk_job_duration_seconds", "")
        yield from self._owner.in_progress.describe()
        yield from self._owner.slots.describe()
        yield HistogramMetricFamily("werk_fetch_duration_seconds", "")
        yield CounterMetricFamily("werk_unknown_jobs", "")
        yield CounterMetricFamily("werk_outages", "")
        yield CounterMetricFamily("werk_outage_seconds", "")
