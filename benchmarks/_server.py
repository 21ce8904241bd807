"""The benchmarks' servers: ``werk server`` in a child process, or one already running
elsewhere (``--url``), and the CPU a process has used."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

from _raw import Raw

ROOT = Path(__file__).resolve().parents[1]
NOOP = "noop"  # a server's source: this tree, with a do-nothing extension (server.py)

# How the servers are started: ``python -m werk`` (uvloop when installed), or with
# ``--asyncio`` (server.py) the same CLI with uvloop made unimportable.
NO_UVLOOP = (
    "import sys; sys.modules['uvloop'] = None; sys.argv[0] = 'werk'; "
    "from werk.cli import main; raise SystemExit(main())"
)
RUN_WERK = ["-m", "werk"]


def cpu_of(pid: int | str) -> float | None:
    """CPU seconds (user + system) process ``pid`` has used (Linux /proc), else None."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rpartition(")")[2].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def children(pid: int | str = "self") -> list[int]:
    """Pids of a process's live children (Linux /proc), [] elsewhere."""
    pids: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*/children"):
        try:
            pids.extend(int(p) for p in task.read_text().split())
        except OSError:
            continue
    return pids


def process_cpu(pid: int | str) -> float:
    """CPU seconds of a process and its live children (0.0 where /proc has none)."""
    return sum(cpu_of(p) or 0.0 for p in [pid, *children(pid)])


def address(url: str) -> tuple[str, int]:
    """(host, port) of a ``tcp://[:password@]host:port`` URL."""
    hostport = url.split("://", 1)[1].rsplit("@", 1)[-1]
    host, _, port = hostport.rpartition(":")
    return host.strip("[]"), int(port)


def flush(url: str) -> None:
    """FLUSH the server at ``url`` (werk and Faktory 1.x alike): every queue and set."""
    c = Raw(address(url))
    assert c.call(b"FLUSH\r\n") == b"+OK"
    c.sock.close()


def _has_no_web(src: str | None) -> bool:
    """Whether the tree's ``werk server`` takes ``--no-web`` (both sides must say it)."""
    if src is None:
        return True
    try:
        with open(os.path.join(src, "werk", "cli", "_server.py")) as f:
            return "--no-web" in f.read()
    except OSError:
        return False


class Server:
    """``werk server`` in a child process: ``pythonpath`` is the tree it imports werk from
    (None: whatever the environment says), or :data:`NOOP` (server.py's do-nothing
    extension)."""

    def __init__(self, storage: str, pythonpath: str | None = None) -> None:
        self.tmp = tempfile.TemporaryDirectory()
        if pythonpath == NOOP:
            script = str(ROOT / "benchmarks" / "server.py")
            cmd = [sys.executable, script, "--serve-with-noop-extension", storage, self.tmp.name]
            pythonpath = None
        else:
            cmd = [sys.executable, *RUN_WERK, "server", "--bind", "127.0.0.1:0"]
            cmd += ["--storage", storage, "--data", self.tmp.name]
            if _has_no_web(pythonpath):  # older trees have none (and serve no pages anyway)
                cmd.append("--no-web")
        env = dict(os.environ)
        env.pop("FAKTORY_PASSWORD", None)
        if pythonpath:
            env["PYTHONPATH"] = pythonpath
        self.proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True, env=env)
        self.pid: int | None = self.proc.pid
        assert self.proc.stderr is not None
        for line in self.proc.stderr:  # the start-up log line names the bound port
            m = re.search(r"listening on tcp://[^:]+:(\d+)", line)
            if m:
                self.port = int(m.group(1))
                self.address = ("127.0.0.1", self.port)
                self.url = f"tcp://127.0.0.1:{self.port}"
                break
        else:
            raise RuntimeError("server did not start")
        threading.Thread(target=self.proc.stderr.read, daemon=True).start()

    def cpu(self) -> float | None:
        """CPU seconds the server process has used (Linux), else None."""
        return cpu_of(self.proc.pid)

    def rss(self) -> int:
        """The server process's resident memory in bytes (Linux), else 0."""
        try:
            with open(f"/proc/{self.proc.pid}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        return int(line.split()[1]) * 1024
        except OSError:
            pass
        return 0

    def close(self) -> None:
        self.proc.terminate()
        self.proc.wait(300)  # a big backlog takes a while to fold and checkpoint
        self.tmp.cleanup()


class Remote:
    """A server already running at ``url`` (``--url``), not started here: its CPU is known
    only when ``pid`` (``--server-pid``) names its process on this machine; its live
    children count too (a real Faktory runs its Redis as one)."""

    def __init__(self, url: str, pid: int | None = None) -> None:
        self.url, self.address, self.pid = url, address(url), pid

    def cpu(self) -> float | None:
        return process_cpu(self.pid) if self.pid else None

    def close(self) -> None:
        pass
