"""Run ``werk server`` as a real child process (for kill -9 and signal tests).

Example::

    with ServerProcess(tmp_path) as proc:
        Raw("127.0.0.1", proc.port).push(...)
        proc.kill9()
"""

from __future__ import annotations

import os
import re
import resource
import signal
import subprocess
import sys
import threading
from pathlib import Path
from types import TracebackType

_LISTEN = re.compile(r"listening on tcp(?:\+tls)?://([^:\s]+):(\d+)")


_ROOT = Path(__file__).resolve().parents[2]  # for "-m tests.server...": the repository


class ServerProcess:
    """``python -m werk server --bind 127.0.0.1:0 --data DIR ...`` with its log captured.

    ``module="tests.server.seam_extension"`` runs that module instead (it takes ``--data``
    and the ``args``, and logs the same "listening on" line).
    """

    def __init__(
        self,
        data_dir: Path,
        *args: str,
        env: dict[str, str] | None = None,
        max_file_size: int | None = None,
        module: str | None = None,
    ) -> None:
        self.data_dir = data_dir
        self.max_file_size = max_file_size  # RLIMIT_FSIZE: a "full disk" for the server
        self.args = args
        self.module = module
        self.env = {**os.environ, **(env or {})}
        if module is not None:
            self.env["PYTHONPATH"] = os.pathsep.join(
                p for p in (str(_ROOT), self.env.get("PYTHONPATH")) if p
            )
        self.env.pop("FAKTORY_PASSWORD", None) if env is None else None
        self.log: list[str] = []
        self.proc: subprocess.Popen[str] | None = None
        self.port = 0

    def start(self) -> ServerProcess:
        if self.module is None:
            cmd = [sys.executable, "-m", "werk", "server", "--bind", "127.0.0.1:0", "--no-web"]
        else:
            cmd = [sys.executable, "-m", self.module]
        cmd += ["--data", str(self.data_dir), *self.args]
        self.proc = subprocess.Popen(
            cmd,
            stderr=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            text=True,
            env=self.env,
            preexec_fn=self._limit if self.max_file_size else None,
        )
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.log.append(line)
            m = _LISTEN.search(line)
            if m:
                self.port = int(m.group(2))
                break
        else:
            raise RuntimeError("server did not start:\n" + "".join(self.log))
        threading.Thread(target=self._drain, daemon=True).start()
        return self

    def _limit(self) -> None:
        # In the child: writes past the limit fail with EFBIG instead of killing it.
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        size = self.max_file_size or resource.RLIM_INFINITY
        resource.setrlimit(resource.RLIMIT_FSIZE, (size, size))

    def _drain(self) -> None:
        assert self.proc is not None and self.proc.stderr is not None
        for line in self.proc.stderr:
            self.log.append(line)

    def kill9(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def terminate(self, sig: int = signal.SIGTERM) -> int:
        assert self.proc is not None
        self.proc.send_signal(sig)
        return self.proc.wait(15)

    def __enter__(self) -> ServerProcess:
        return self.start()

    def __exit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
