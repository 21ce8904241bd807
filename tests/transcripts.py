"""Load the byte-exact recordings of a real Faktory server (``tests/data/transcripts``).

Each file is one scenario; each entry is what one connection sent or received::

    [   0.003s] c1  S->C b'+HI {"v":2}\\r\\n'
    [   0.004s] c1  C->S b'HELLO {...}\\r\\n'
    [   0.004s] c1  S->C <EOF: server closed connection> (after 0.000s)
    [   0.004s] c1  (tcp connect 127.0.0.1:17419)

The scenarios are a fixed list (:data:`SCENARIOS`), so a test parametrized over them never
runs over an empty list: a missing recording fails the test that needs it, naming the file.

Example::

    for entry in load("09_ack"):
        if entry.kind == "send": ...
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from pathlib import Path

TRANSCRIPTS = Path(__file__).resolve().parent / "data" / "transcripts"

# Every recording in TRANSCRIPTS, in order (its README says what each one shows).
SCENARIOS = (
    "01_handshake_no_password",
    "02_handshake_password",
    "03_handshake_wrong_password",
    "04_push_valid",
    "05_push_invalid",
    "06_pushb",
    "07_fetch_empty",
    "08_fetch_multiple_queues",
    "09_ack",
    "10_ack_unknown_jid",
    "11_fail",
    "12_beat",
    "13_info",
    "14_flush",
    "15_mutate",
    "16_queue_pause_resume_remove",
    "17_scheduled_job",
    "18_reserve_for_expiry",
    "19_unknown_command",
    "20_malformed_line",
    "21_end",
    "22_v194_bare_verb_crash",
)


class MissingRecording(FileNotFoundError):
    """A recording the tests need is not in the repository."""


_ENTRY = re.compile(r"^\[\s*([0-9.]+)s\]\s+([a-z]+\d+)\s+(.*)$")
# A huge argument is recorded as ``xxxx...(1048576 x)...``: expand it back.
_REPEAT = re.compile(rb"(.)\1*\.\.\.\((\d+) \1\)\.\.\.")
# A huge reply is recorded as ``b'$1048750\r\n{"'...(1048762 bytes total, ...)``.
_CUT = re.compile(r"^(b'.*')\.\.\.\(\d+ bytes total.*\)$")


def _literal(text: str) -> tuple[bytes, bool]:
    cut = _CUT.match(text)
    if cut is not None:
        return ast.literal_eval(cut.group(1)), True
    data: bytes = ast.literal_eval(text)
    return _REPEAT.sub(lambda m: m.group(1) * int(m.group(2)), data), False


@dataclass(frozen=True)
class Entry:
    """One line of a transcript.

    ``kind`` is ``"send"`` (client to server), ``"recv"`` (one complete server reply),
    ``"eof"`` (the server closed), ``"connect"`` or ``"close"`` (the client closed).
    """

    elapsed: float
    conn: str
    kind: str
    data: bytes = b""
    comment: str = ""
    abbreviated: bool = False  # the recording kept only the start of a huge reply


def names() -> list[str]:
    """Scenario names, e.g. ``"01_handshake_no_password"`` (the fixed list, never empty)."""
    return list(SCENARIOS)


def path(name: str) -> Path:
    """The file of one scenario; :class:`MissingRecording` names it when it is absent."""
    file = TRANSCRIPTS / f"{name}.txt"
    if not file.is_file():
        raise MissingRecording(
            f"the real-server recording {file} is missing: the tests read the recordings "
            "from tests/data/transcripts (see tests/data/README.md)"
        )
    return file


def load(name: str) -> list[Entry]:
    """Parse one scenario; ``comment`` holds the ``#`` lines just before each entry."""
    entries: list[Entry] = []
    comments: list[str] = []
    for raw in path(name).read_text(encoding="utf-8").splitlines():
        if raw.startswith("#"):
            comments.append(raw[1:].strip())
            continue
        m = _ENTRY.match(raw)
        if m is None:
            continue
        elapsed, conn, rest = float(m.group(1)), m.group(2), m.group(3)
        comment = "\n".join(comments)
        comments = []
        if rest.startswith("C->S "):
            data, cut = _literal(rest[5:])
            entries.append(Entry(elapsed, conn, "send", data, comment, cut))
        elif rest.startswith("S->C <EOF"):
            entries.append(Entry(elapsed, conn, "eof", b"", comment))
        elif rest.startswith("S->C "):
            data, cut = _literal(rest[5:])
            entries.append(Entry(elapsed, conn, "recv", data, comment, cut))
        elif rest.startswith("(tcp connect"):
            entries.append(Entry(elapsed, conn, "connect", b"", comment))
        elif rest.startswith("(client closed"):
            entries.append(Entry(elapsed, conn, "close", b"", comment))
    return entries


def replies(name: str) -> list[bytes]:
    """Every complete server reply recorded in a scenario, in order."""
    return [e.data for e in load(name) if e.kind == "recv"]
