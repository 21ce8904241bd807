"""werk: the Python toolkit for Faktory.

* :class:`Client` / :class:`AsyncClient`: every command of the Faktory work protocol.
* :class:`App` and :class:`Worker`: run Python functions as Faktory jobs.
* ``werk server``: an embedded Faktory-compatible server.

Example::

    import werk

    with werk.Client() as client:          # FAKTORY_URL or tcp://localhost:7419
        jid = client.push("SendEmail", "ann@example.com")
"""

from werk import _errors
from werk._errors import *  # noqa: F403 - every exception (see werk._errors.__all__)
from werk._job import Failure, Job
from werk._version import __version__
from werk.client import (
    AsyncBatch,
    AsyncClient,
    AsyncClientPool,
    Batch,
    BatchStatus,
    CallbackState,
    Client,
    ClientPool,
    JobTrack,
    Mutation,
    Target,
    TrackState,
)
from werk.worker import App, JobContext, JobFunction, Middleware, Worker, current_job

__all__ = [
    "App",
    "AsyncBatch",
    "AsyncClient",
    "AsyncClientPool",
    "Batch",
    "BatchStatus",
    "CallbackState",
    "Client",
    "ClientPool",
    "Failure",
    "Job",
    "JobContext",
    "JobFunction",
    "JobTrack",
    "Middleware",
    "Mutation",
    "Target",
    "TrackState",
    "Worker",
    "__version__",
    "current_job",
]
__all__ += _errors.__all__
