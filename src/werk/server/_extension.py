"""Extensions: where features beyond the open-source protocol (Faktory Enterprise's
batches, tracking, unique and expiring jobs, cron, throttles) plug into the server.

The hooks mirror the points the real server exposes to Enterprise (push, fetch, ack and
fail middleware, the fetcher's lease, subsystems with reload and their own commands; see
``docs/enterprise.md`` section 2.2). An extension is a subclass of :class:`Extension`
that overrides the hooks it needs; every hook here is a documented no-op, in the manner
of dramatiq's middleware.

Writing one
-----------
Subclass :class:`Extension`, override hooks, and hand instances to the server that should
run them: ``EmbeddedServer(extensions=[...])``, ``Server(config, extensions=[...])`` or
``Manager(storage, clock, extensions=[...])``. There is no global registry: a server runs
exactly the list it was given, in that order. Each instance serves one manager, which it
gets in :meth:`Extension.attach` as a :class:`Host` (the part of the manager an extension
may use); store it there and do nothing else yet (the manager is still being built).
Hooks run on the server's event loop, one at a time, and must not block. An exception
from a hook is a bug: it is logged with its traceback and the server carries on as if the
hook had done nothing (a :meth:`~Extension.check_push` that raises refuses the job with
``internal error``; an :meth:`~Extension.admit` that raises admits), so that no job is
lost to it. A command handler that raises answers ``-ERR internal error``.

A manager without extensions calls none of this. With extensions, a hook is called only on
the extensions that override it, and the per-job hooks only for jobs that carry a non-empty
``custom`` object (or, for throttles, come from a queue an extension guards): a plain job
pays one flag test per command. A job's payload is decoded for :meth:`~Extension.reserved`
and :meth:`~Extension.acked` only if some extension overriding them
:attr:`~Extension.needs_job`.

The order, command by command
-----------------------------
PUSH and each job of PUSHB, once the ordinary checks passed (jid, jobtype, args,
reserve_for, ``at``, and the queue name of a job that is not scheduled):

1. :meth:`~Extension.check_push` on each extension, in order. It may rewrite the job in
   place (``expires_in`` into ``expires_at``) or refuse it by returning an error: a
   :class:`KnownError` (``KnownError("NOTUNIQUE", "Job not unique")``) or a plain text
   (``-ERR <text>``). The first refusal ends the push: nothing is stored, later extensions
   do not see the job, and PUSHB reports the text for that jid. Change no state here: a
   later extension may still refuse.
2. :meth:`~Extension.pushed` on each: the job is accepted (take the lock, count the member).
3. The job is stored: in the scheduled set, or in its queue, or handed at once to a blocked
   FETCH (which runs the FETCH steps below).

Jobs that re-enter a queue from the scheduled or retry set, or by MUTATE, skip 1 and 2
(as in Faktory: a retry is not a new push; MUTATE requeue is reported to
:meth:`~Extension.removed`, below).

FETCH, for each queue it names, in order:

1. A paused queue is skipped.
2. :meth:`~Extension.admit` on each extension guarding the queue (:meth:`Host.guard_queue`):
   ``False`` skips the queue for this FETCH; the other queues still deliver.
3. The queue's first job is popped. If it has ``custom``, :meth:`~Extension.fetch` on each:
   an error text discards the job (logged as ``JID <jid>: <text>``, then
   :meth:`~Extension.discarded` on every extension) and the same FETCH goes on with the
   next job.
4. The reservation is made, then :meth:`~Extension.reserved` on each.

A blocked FETCH is handed a job that arrives (or is woken by :meth:`Host.wake`) through
the same steps 2 to 4.

ACK, only when the jid has a reservation: :meth:`~Extension.acked`, then
:meth:`~Extension.released` with :data:`ACK`. An ACK of an unknown jid runs nothing.

FAIL, and the expiry of a reservation: the job's ``failure`` is updated and its outcome
decided (:data:`RETRY`, :data:`DEAD` or :data:`DISCARD` for ``retry: 0``);
:meth:`~Extension.failed` with the outcome; the outcome is carried out; then
:meth:`~Extension.released` with :data:`FAILED` or :data:`EXPIRED`.

A job whose FETCH reply never reached its client goes back to its queue:
:meth:`~Extension.released` with :data:`PUT_BACK` first.

A job taken out of a queue or a set other than by FETCH, ACK or FAIL (the operator's
MUTATE, QUEUE REMOVE and the web UI's deletes, or the server dropping it: a dead job past
its 180 days, a scheduled job or retry whose queue name is unusable):
:meth:`~Extension.removed` with :data:`KILLED` (MUTATE kill: to the dead set),
:data:`DELETED` (erased) or :data:`REQUEUED` (MUTATE requeue: back to its queue), in the
same event-loop turn as the removal and before the job reaches its new place. Only jobs
with ``custom`` are reported, each once per removal; a MUTATE kill of a job already in the
dead set reports nothing (its state does not change). FLUSH reports no job:
:meth:`~Extension.flushed` stands for them all.

Steps 3 and 4 of FETCH, ACK, FAIL and expiry reach an extension for the reservations
that were hooked: their job had ``custom``, or their queue was guarded when fetched (and
every reservation loaded at boot).

Elsewhere: :meth:`~Extension.tick` once per run of the periodic tasks (every second; every
move of a manual clock), after the built-in tasks; :meth:`~Extension.worker_gone` when a
worker process leaves; :meth:`~Extension.flushed` after FLUSH; the commands of
:meth:`~Extension.commands` (``BATCH``, ``TRACK``: replacing the "only available in
Faktory Enterprise" replies); :meth:`~Extension.read_config` then
:meth:`~Extension.use_config` at start and on every reload (SIGHUP,
``EmbeddedServer.reload_config()``).

Configuration
-------------
The server reads its configuration once per start or reload (``--config-dir DIR``:
``DIR/conf.d/*.toml``; or ``EmbeddedServer(config={...})``) into one
:class:`~werk.server._confd.Config` and hands the same object to every extension's
:meth:`~Extension.read_config`: ``config.cron`` (every ``[[cron]]`` entry),
``config.throttles`` (every ``[throttles]`` name), ``config.table(name)`` for a table
named in :attr:`Extension.config_tables`. Each part is a
:class:`~werk.server._confd.Section` that knows the file and line of each key, for
refusals such as ``conf.d/cron.toml:12: cron.job.retry must be an integer``. A top-level
table that neither werk nor an extension reads is refused.

What is durable
---------------
Records: :meth:`Host.put_record`, :meth:`Host.delete_record` and :meth:`Host.clear_records`
store ``(space, key) -> bytes`` through the server's storage, in the same group commit as
the job changes of the same event-loop turn. With SQLite storage no reply of that turn is
written before the journal record holding all of them is on disk, so a job change and its
bookkeeping (a batch counter, a unique lock, a cron tick, a throttle slot) survive
``kill -9`` together or not at all; a record torn by a crash is dropped whole with the job
changes beside it. :meth:`~Extension.load` gets every stored record at boot and again
after a failed commit (when the server reloads what was stored): rebuild the in-memory
state from it. Nothing else of an extension is durable. Memory storage stores no record
(``load`` gets none). FLUSH does not touch records: drop yours in :meth:`~Extension.flushed`
if they describe jobs. Reservation extensions (:meth:`Host.extend_reservation`) are
stored like the reservation itself.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import ClassVar, Final, Protocol

from werk.server._clock import Clock
from werk.server._confd import Config
from werk.server._payload import JobCodec, Payload
from werk.server._sets import Reservation

__all__ = [
    "ACK",
    "DEAD",
    "DELETED",
    "DISCARD",
    "EXPIRED",
    "FAILED",
    "KILLED",
    "PUT_BACK",
    "REQUEUED",
    "RETRY",
    "CommandClient",
    "CommandHandler",
    "Extension",
    "Host",
    "KnownError",
    "Records",
]

# How a reservation ended (Extension.released).
ACK: Final = "ack"
FAILED: Final = "fail"
EXPIRED: Final = "expired"
PUT_BACK: Final = "put_back"

# What a FAIL (or an expiry) does with the job (Extension.failed).
RETRY: Final = "retry"
DEAD: Final = "dead"
DISCARD: Final = "discard"

# How a job left its queue or set other than by FETCH (Extension.removed).
KILLED: Final = "kill"
DELETED: Final = "delete"
REQUEUED: Final = "requeue"

Records = Mapping[str, Mapping[str, bytes]]
"""Stored records by space, then key."""


class KnownError(str):
    """A refusal with its own error code, such as ``-NOTUNIQUE Job not unique``.

    It is the text ``"<CODE> <message>"`` (what PUSHB reports for the job, as the real
    server does) and carries ``code`` and ``message`` for the single reply.

    Example::

        >>> error = KnownError("NOTUNIQUE", "Job not unique")
        >>> str(error), error.code, error.message
        ('NOTUNIQUE Job not unique', 'NOTUNIQUE', 'Job not unique')
    """

    code: str
    message: str

    def __new__(cls, code: str, message: str) -> KnownError:
        self = super().__new__(cls, f"{code} {message}")
        self.code = code
        self.message = message
        return self


class CommandClient(Protocol):
    """The connection an extension's command runs for."""

    @property
    def wid(self) -> str:
        """The worker id its HELLO gave ("" for a producer)."""
        ...


CommandHandler = Callable[[bytes | None, CommandClient], bytes]
"""``handler(argument, client) -> reply bytes``: the argument is what follows the verb
and a space (None when there is nothing), the reply a whole RESP reply built with
``werk._protocol.resp`` (``encode_bulk``, ``encode_error``, ``OK``). Sans-I/O like the
rest of dispatch: the connection writes the reply once the command's changes are
committed."""


class Host(Protocol):
    """What a manager offers its extensions (:meth:`Extension.attach` hands it over)."""

    clock: Clock
    codec: JobCodec
    reservations: dict[str, Reservation]

    def now_string(self) -> str:
        """The clock's time as the server writes it (``2025-01-02T03:04:05.2Z``)."""
        ...

    def push(self, job: Payload) -> str | None:
        """Push a job through the whole PUSH pipeline (checks, extensions, storage); the
        error text or None. For jobs an extension makes: callbacks, cron ticks."""
        ...

    def extend_reservation(self, jid: str, until: float) -> bool:
        """Move the expiry of ``jid``'s reservation to ``until`` (at most a day from now),
        never earlier; stored. Whether it moved."""
        ...

    def put_record(self, space: str, key: str, value: bytes) -> None:
        """Store a record (replacing one with the same space and key)."""
        ...

    def delete_record(self, space: str, key: str) -> None:
        """Delete a record (nothing happens if there is none)."""
        ...

    def clear_records(self, space: str) -> None:
        """Delete every record of a space."""
        ...

    def guard_queue(self, queue: str, extension: Extension) -> None:
        """Ask :meth:`Extension.admit` before every FETCH takes a job from ``queue``."""
        ...

    def unguard_queue(self, queue: str, extension: Extension) -> None:
        """Stop asking ``extension`` about ``queue``."""
        ...

    def wake(self, queue: str) -> None:
        """Hand the jobs waiting in ``queue`` to blocked FETCHes that may take them now
        (after a throttle slot freed)."""
        ...


class Extension:
    """Base class of server extensions: every hook is a no-op (see the module docstring
    for when each runs and what is durable).

    Example (refuse jobs that ask for it, count the ACKs of the others)::

        >>> class Gate(Extension):
        ...     acks = 0
        ...     def check_push(self, job):
        ...         return "refused" if job["custom"].get("refuse") else None
        ...     def acked(self, res, job):
        ...         self.acks += 1
        >>> from werk.server._clock import ManualClock
        >>> from werk.server._manager import Manager
        >>> from werk.server._storage import MemoryStorage
        >>> gate = Gate()
        >>> m = Manager(MemoryStorage(), ManualClock(0), extensions=[gate])
        >>> m.push_bytes(b'{"jid":"jid-00000001","jobtype":"T","args":[],"custom":{"refuse":1}}')
        'refused'
        >>> m.push_bytes(b'{"jid":"jid-00000002","jobtype":"T","args":[],"custom":{"x":1}}')
        >>> m.ack(m.fetch(["default"], "").jid), gate.acks
        (True, 1)
    """

    host: Host
    config_tables: ClassVar[tuple[str, ...]] = ()
    """Top-level configuration tables this extension reads beyond werk's own ``cron`` and
    ``throttles`` (``config.table(name)``); any other table is refused."""

    needs_job: bool = True
    """Whether this extension's :meth:`reserved` and :meth:`acked` read their ``job``
    argument. One that needs only the reservation (its jid) sets it False: the job is then
    not decoded for it (decoding a payload costs microseconds per job), and ``job`` is
    None unless another extension asked for it."""

    # -- life cycle ------------------------------------------------------------------

    def attach(self, host: Host) -> None:
        """Called once, when the manager is built, before :meth:`load`."""
        self.host = host

    def load(self, records: Records) -> None:
        """Every stored record (all spaces), at boot and after a failed commit: rebuild
        the in-memory state from them."""

    def read_config(self, config: Config) -> object:
        """Check this extension's part of ``config`` (the same object for every
        extension; empty without a configuration) and return what :meth:`use_config`
        will switch to; change nothing yet, and use nothing of the host (``werk cron``
        checks files with extensions that serve no server). Raise
        :class:`~werk.ConfigurationError` naming the file and line (``section.error(...)``)
        to refuse it: at start the server does not start, on a reload the previous
        configuration stays in force for every extension."""
        return None

    def use_config(self, config: object) -> None:
        """Switch to what :meth:`read_config` returned (every extension accepted its own);
        must not fail."""

    def commands(self) -> Mapping[bytes, CommandHandler]:
        """Verbs this extension answers (``{b"BATCH": handler}``), asked once at attach;
        a verb of the protocol itself cannot be taken."""
        return {}

    def tick(self, now: float) -> bool:
        """Periodic work on the server's clock (expire what is due). True when there is
        more to do: called again on the next event-loop turn, so clients are served in
        between."""
        return False

    def flushed(self) -> None:
        """FLUSH erased every job, set and counter."""

    def worker_gone(self, wid: str, reaped: bool) -> None:
        """A worker process left: its last connection closed, or (``reaped``) it sent no
        BEAT for 60 s. Its reservations stay until ACK, FAIL or expiry."""

    # -- PUSH ------------------------------------------------------------------------

    def check_push(self, job: Payload) -> str | None:
        """May rewrite ``job`` in place; return an error (a :class:`KnownError` or text)
        to refuse it. Must not change state."""
        return None

    def pushed(self, job: Payload) -> None:
        """``job`` was accepted and is about to be stored."""

    # -- FETCH -----------------------------------------------------------------------

    def admit(self, queue: str, wid: str) -> bool:
        """For a guarded queue: may this FETCH (worker ``wid``) take a job from it now?"""
        return True

    def fetch(self, job: Payload, queue: str, wid: str) -> str | None:
        """On a popped job, before its reservation: an error text discards it."""
        return None

    def discarded(self, job: Payload, reason: str) -> None:
        """A FETCH discarded ``job`` (some extension's :meth:`fetch` said ``reason``)."""

    def reserved(self, res: Reservation, job: Payload | None) -> None:
        """A FETCH reserved a job (``job`` decoded when it has ``custom`` and some extension
        :attr:`needs_job`, else None)."""

    # -- ACK / FAIL ------------------------------------------------------------------

    def acked(self, res: Reservation, job: Payload | None) -> None:
        """The reservation ended with ACK."""

    def failed(self, res: Reservation, job: Payload, outcome: str) -> None:
        """FAIL or expiry: ``job`` has its updated ``failure``; ``outcome`` is
        :data:`RETRY`, :data:`DEAD` or :data:`DISCARD`, about to be carried out."""

    def released(self, res: Reservation, reason: str) -> None:
        """The reservation is over: :data:`ACK`, :data:`FAILED`, :data:`EXPIRED` or
        :data:`PUT_BACK`."""

    # -- operator actions and housekeeping ----------------------------------------------

    def removed(self, jid: str, payload: bytes, how: str) -> None:
        """A job with ``custom`` left its queue or set other than by FETCH, ACK or FAIL:
        :data:`KILLED` (now in the dead set), :data:`DELETED` (gone from the server) or
        :data:`REQUEUED` (back at the end of its queue). ``payload`` is the stored job
        (``host.codec.loads(payload)`` when more than the jid is needed: most removals
        need no decoding). Runs in the turn of the removal, so record changes made here
        are stored in its commit."""

    # -- metrics ---------------------------------------------------------------------

    def metric_samples(self) -> list[MetricSample]:
        """Figures for the server's Prometheus page (``/metrics``), read at each scrape on
        the event loop: report counts the extension already keeps, compute nothing costly.
        Samples of one name form one family (give them the same ``kind`` and ``help``)."""
        return []


class MetricSample:
    """One figure of an extension on ``/metrics``: a ``gauge`` (a level) or a ``counter``
    (a running total, named without its ``_total`` suffix, which the page adds), with
    optional labels. Name it ``werk_server_<feature>_<what>``.

    Example::

        MetricSample("werk_server_batches_pending", 3, help="Batches not yet complete.")
        MetricSample("werk_server_cron_runs", 12, kind="counter", labels={"entry": "nightly"})
    """

    __slots__ = ("help", "kind", "labels", "name", "value")

    def __init__(
        self,
        name: str,
        value: float,
        *,
        kind: str = "gauge",
        help: str = "",
        labels: Mapping[str, str] | None = None,
    ) -> None:
        self.name = name
        self.value = value
        self.kind = kind
        self.help = help
        self.labels = labels or {}

    def __repr__(self) -> str:
        return f"<MetricSample {self.name}{dict(self.labels) or ''} {self.kind} {self.value}>"
