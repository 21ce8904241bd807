"""The worker runtime: declare jobs on an :class:`App`, run them with a :class:`Worker`.

Everything here is also in :mod:`werk` (``werk.App``, ``werk.Worker`` ...), but
:class:`JobOptions` and :class:`RemoteJobError`. The modules below this package are
internal.

Example::

    import werk

    app = werk.App()

    @app.job(queue="mail")
    def send_email(to: str) -> None:
        ...

    send_email.push("ann@example.com")               # producer side
    werk.Worker(app, queues=["mail", "default"]).run()  # worker side
"""

from werk.worker._app import App, JobFunction, JobOptions
from werk.worker._context import JobContext, current_job
from werk.worker._middleware import Middleware
from werk.worker._run import RemoteJobError
from werk.worker._worker import Worker

__all__ = [
    "App",
    "JobContext",
    "JobFunction",
    "JobOptions",
    "Middleware",
    "RemoteJobError",
    "Worker",
    "current_job",
]
