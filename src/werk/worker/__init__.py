"""The worker runtime: declare jobs on an :class:`App`, run them with a :class:`Worker`.

Example::

    import werk

    app = werk.App()

    @app.job(queue="mail")
    def send_email(to: str) -> None:
        ...

    send_email.push("ann@example.com")               # producer side
    werk.Worker(app, queues=["mail", "default"]).run()  # worker side
"""

from werk.worker.app import App, JobFunction, JobOptions
from werk.worker.context import JobContext, current_job
from werk.worker.middleware import Middleware
from werk.worker.runner import RemoteJobError
from werk.worker.worker import Worker

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
