"""Every exception werk raises, under one root.

The tree::

    FaktoryError
     ├─ ConfigurationError        bad URL, FAKTORY_PROVIDER or option (also a ValueError)
     ├─ JobValidationError        a job the server would reject (also a ValueError)
     ├─ JobArgumentError          arguments a job function does not take (also a TypeError)
     ├─ UnknownJobTypeError       no handler for a job's type (also a LookupError)
     ├─ NotInBatchError           the running job belongs to no batch (also a LookupError)
     ├─ ProtocolError
     │   ├─ LocalProtocolError    an argument the protocol cannot carry (also a ValueError)
     │   └─ RemoteProtocolError   the peer sent bytes that break the protocol
     │       └─ LineTooLongError  a line or bulk string beyond the configured cap
     ├─ NetworkError              the connection failed (the OSError is the ``__cause__``)
     │   ├─ ConnectError          could not connect, or the TLS handshake failed
     │   ├─ ConnectionClosedError the peer closed the connection mid-conversation
     │   └─ NetworkTimeout        connecting, reading or writing took too long
     └─ ServerError               the server answered ``-CODE message``
         ├─ AuthenticationError   ``-ERR Invalid password``
         ├─ JobNotFoundError      ``-ERR Job not found <jid>``
         ├─ UnknownWorkerError    ``-ERR unknown worker <wid>``
         ├─ EnterpriseOnlyError   the command needs Faktory Enterprise
         ├─ NotUniqueError        ``-NOTUNIQUE Job not unique``: a unique job's duplicate
         └─ ShutdownInProgressError the server is stopping
"""

from __future__ import annotations

__all__ = [
    "AuthenticationError",
    "ConfigurationError",
    "ConnectError",
    "ConnectionClosedError",
    "EnterpriseOnlyError",
    "FaktoryError",
    "JobArgumentError",
    "JobNotFoundError",
    "JobTimeout",
    "JobValidationError",
    "LineTooLongError",
    "LocalProtocolError",
    "NetworkError",
    "NetworkTimeout",
    "NotInBatchError",
    "NotUniqueError",
    "ProtocolError",
    "RemoteProtocolError",
    "ServerError",
    "ShutdownInProgressError",
    "UnknownJobTypeError",
    "UnknownWorkerError",
]


class FaktoryError(Exception):
    """Root of every exception raised by werk.

    Example::

        try:
            client.ack(jid)
        except werk.FaktoryError:
            log.exception("faktory said no")
    """


class ConfigurationError(FaktoryError, ValueError):
    """A URL, environment variable or option that werk cannot use.

    Example::

        werk.Client("http://localhost")   # raises ConfigurationError: scheme must be tcp or tcp+tls
    """


class JobValidationError(FaktoryError, ValueError):
    """A job that the server would reject, caught before it was sent.

    ``field`` names the offending job field and ``message`` says what is wrong.

    Example::

        try:
            werk.Job("Resize", args=[1], queue="bad queue!")
        except werk.JobValidationError as exc:
            assert exc.field == "queue"
    """

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


class JobArgumentError(FaktoryError, TypeError):
    """Arguments that a job function's signature does not take, refused before pushing.

    Example::

        @app.job
        def resize(image_id: int) -> None: ...

        resize.push(42, size="small")   # raises JobArgumentError: unexpected keyword 'size'
    """


class UnknownJobTypeError(FaktoryError, LookupError):
    """A job whose type has no registered handler.

    A worker FAILs such a job with errtype ``UnknownJobType`` (the server retries it, maybe
    on a worker that knows it); an eager app raises this error at the push.

    Example::

        eager_app = werk.App(eager=True)
        eager_app.push_job(werk.Job("NoSuchJob"))   # raises UnknownJobTypeError
    """


class NotInBatchError(FaktoryError, LookupError):
    """A running job asked for its batch, but it is not a member of one (no ``custom.bid``)
    nor a batch callback (no ``custom._bid``).

    Example::

        try:
            batch = werk.current_job().reopen_batch()
        except werk.NotInBatchError:
            batch = app.client().batch(success=werk.Job("Done"))
    """


class JobTimeout(FaktoryError):
    """A job ran past its timeout (``@app.job(timeout=...)``, ``Worker(job_timeout=...)``).

    The worker FAILs such a job with this errtype; a handler may raise it itself through
    :meth:`werk.JobContext.check_deadline` to stop cooperatively.

    Example::

        for row in rows:
            werk.current_job().check_deadline()   # raises JobTimeout once the time is up
            handle(row)
    """


class ProtocolError(FaktoryError):
    """The conversation broke the Faktory protocol (on either side).

    Example::

        except werk.ProtocolError:
            ...  # the connection is dropped; the next call opens a new one
    """


class LocalProtocolError(ProtocolError, ValueError):
    """werk was asked to send something that the protocol cannot carry (also a ValueError).

    For example a FETCH without queues, or a MUTATE filter containing a space: a bad
    argument, refused before anything is sent.
    """


class RemoteProtocolError(ProtocolError):
    """The peer sent bytes that are not valid Faktory protocol.

    For example a reply that does not start with ``+``, ``-``, ``$`` or ``:``, or a
    greeting that is not ``+HI {...}``.
    """


class LineTooLongError(RemoteProtocolError):
    """A line or bulk string exceeded the configured size cap."""


class NetworkError(FaktoryError):
    """The connection to the server failed; the next call reconnects.

    The underlying ``OSError`` (if any) is chained as ``__cause__``.
    Whether a command sent before the failure took effect is unknown: ``command_sent`` says
    whether any of it had been written. For PUSH and PUSHB, ``unknown_jids`` lists the jobs
    whose fate is unknown (they may have been stored; pushing them again can duplicate them)
    and ``pushed_jids`` those that an earlier PUSHB chunk stored before the failure.

    Example::

        except werk.NetworkError as exc:
            if exc.command_sent:
                log.warning("may have been stored: %s", exc.unknown_jids)
    """

    command_sent: bool = False
    unknown_jids: tuple[str, ...] = ()
    pushed_jids: tuple[str, ...] = ()


class ConnectError(NetworkError):
    """Could not open a connection (refused, unreachable, DNS, TLS handshake)."""


class ConnectionClosedError(NetworkError):
    """The server closed the connection before answering."""


class NetworkTimeout(NetworkError):
    """Connecting, writing or reading took longer than the configured timeout."""


class ServerError(FaktoryError):
    """The server answered with an error line, ``-CODE message``.

    ``code`` is the first word (``"ERR"`` for generic errors, others such as
    ``"NOTUNIQUE"`` from Faktory Enterprise) and ``message`` the rest, both exactly
    as the server sent them.

    Example::

        except werk.ServerError as exc:
            if exc.code == "NOTUNIQUE":
                ...
    """

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code} {message}" if message else code)
        self.code = code
        self.message = message


class AuthenticationError(ServerError):
    """The server refused the password (``-ERR Invalid password``).

    Check ``FAKTORY_URL`` (``tcp://:PASSWORD@host:7419``) or the ``password`` argument.
    """


class JobNotFoundError(ServerError):
    """FAIL named a jid that is not reserved (already acknowledged, or its reservation expired)."""


class UnknownWorkerError(ServerError):
    """BEAT named a worker id the server does not know (it was reaped or never said HELLO)."""


class EnterpriseOnlyError(ServerError):
    """The command exists only in Faktory Enterprise (batches, tracking)."""


class NotUniqueError(ServerError):
    """The server refused a push as a duplicate of a unique job whose lock is held
    (``-NOTUNIQUE Job not unique``); ``jid`` is the refused job's (None when unknown).

    Example::

        try:
            client.push("Report", 7, unique_for=3600)
        except werk.NotUniqueError as exc:
            log.info("report already queued; %s not pushed", exc.jid)
    """

    def __init__(self, code: str, message: str, jid: str | None = None) -> None:
        super().__init__(code, message)
        self.jid = jid


class ShutdownInProgressError(ServerError):
    """The server is shutting down and closed the connection."""


# Users meet these classes as ``werk.<Name>`` (re-exported there): tracebacks and reprs say so.
for _cls in (obj for obj in list(globals().values()) if isinstance(obj, type)):
    if issubclass(_cls, FaktoryError):
        _cls.__module__ = "werk"
