"""werk: the Python toolkit for Faktory.

* :class:`Client` / :class:`AsyncClient`: every command of the Faktory work protocol.
* :class:`App` and :class:`Worker`: run Python functions as Faktory jobs.
* ``werk server``: an embedded Faktory-compatible server.

Example::

    import werk

    with werk.Client() as client:          # FAKTORY_URL or tcp://localhost:7419
        jid = client.push("SendEmail", "ann@example.com")
"""

from werk._errors import (
    AuthenticationError,
    ConfigurationError,
    ConnectError,
    ConnectionClosedError,
    EnterpriseOnlyError,
    FaktoryError,
    JobNotFoundError,
    JobValidationError,
    LineTooLongError,
    LocalProtocolError,
    NetworkError,
    NetworkTimeout,
    ProtocolError,
    RemoteProtocolError,
    ServerError,
    ShutdownInProgressError,
    UnknownWorkerError,
)
from werk._job import Failure, Job
from werk._version import __version__
from werk.client import (
    AsyncClient,
    AsyncClientPool,
    Client,
    ClientPool,
    Mutation,
    Target,
)
from werk.worker import App, JobContext, JobFunction, Middleware, Worker, current_job

__all__ = [
    "App",
    "AsyncClient",
    "AsyncClientPool",
    "AuthenticationError",
    "Client",
    "ClientPool",
    "ConfigurationError",
    "ConnectError",
    "ConnectionClosedError",
    "EnterpriseOnlyError",
    "Failure",
    "FaktoryError",
    "Job",
    "JobContext",
    "JobFunction",
    "JobNotFoundError",
    "JobValidationError",
    "LineTooLongError",
    "LocalProtocolError",
    "Middleware",
    "Mutation",
    "NetworkError",
    "NetworkTimeout",
    "ProtocolError",
    "RemoteProtocolError",
    "ServerError",
    "ShutdownInProgressError",
    "Target",
    "UnknownWorkerError",
    "Worker",
    "__version__",
    "current_job",
]
