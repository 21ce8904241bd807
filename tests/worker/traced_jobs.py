"""An app with tracing for tests that run jobs in child processes (``--executor process``).

The children have no tracer provider of their own (the API's no-op one), so a job pushed
from a child carries the trace context of the job that pushed it.
"""

from __future__ import annotations

from pathlib import Path

import werk
from werk.tracing import TracingMiddleware

app = werk.App()
app.add_middleware(TracingMiddleware())


@app.job(retry=0)
def relay(directory: str) -> None:
    """Push ``keep_context`` from inside a job."""
    keep_context.push(directory)


@app.job(retry=0)
def keep_context(directory: str) -> None:
    """Write the trace context this job arrived with to ``directory/traceparent``."""
    custom = werk.current_job().custom
    Path(directory, "traceparent").write_text(custom.get("traceparent", "none"))
