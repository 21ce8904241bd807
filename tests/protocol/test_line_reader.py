"""LineReader and split_command (server role), as the real server splits lines."""

from __future__ import annotations

import pytest
from tests.transcripts import load

from werk._errors import LineTooLongError
from werk._protocol.command_lines import LineReader, split_command

STREAM = b"INFO\r\nINFO\nPUSH {}\r\n\r\nINFO\rFOO\r\n INFO\r\nINFO \r\n\xff\xfe\r\nINFO\x00\r\n"
LINES = [
    b"INFO",
    b"INFO",
    b"PUSH {}",
    b"",
    b"INFO\rFOO",
    b" INFO",
    b"INFO ",
    b"\xff\xfe",
    b"INFO\x00",
]


def drain(reader: LineReader) -> list[bytes]:
    out = []
    while (line := reader.next_line()) is not None:
        out.append(line)
    return out


def test_lines() -> None:
    reader = LineReader()
    reader.feed(STREAM)
    assert drain(reader) == LINES
    assert reader.buffered == 0


@pytest.mark.parametrize("cut", range(1, len(STREAM)))
def test_split_at_every_byte(cut: int) -> None:
    reader = LineReader()
    reader.feed(STREAM[:cut])
    got = drain(reader)
    reader.feed(STREAM[cut:])
    assert got + drain(reader) == LINES


def test_unterminated_line_is_never_returned() -> None:
    reader = LineReader()
    reader.feed(b'PUSH {"jid":"jid-partial-01","jobtype":"T","args":[]}')
    assert reader.next_line() is None
    assert reader.buffered > 0


def test_line_cap() -> None:
    reader = LineReader(max_line=4)
    reader.feed(b"INFO\r\n")
    assert reader.next_line() == b"INFO"
    reader.feed(b"FLUSH\r\n")
    with pytest.raises(LineTooLongError):
        reader.next_line()
    endless = LineReader(max_line=4)
    endless.feed(b"x" * 10)
    with pytest.raises(LineTooLongError):
        endless.next_line()


@pytest.mark.parametrize(
    ("line", "parts"),
    [
        (b"FETCH a b", (b"FETCH", b"a b")),
        (b"ACK", (b"ACK", None)),
        (b"ACK ", (b"ACK", b"")),
        (b"", (b"", None)),
        (b" INFO", (b"", b"INFO")),
        (b'PUSH {"a": 1}', (b"PUSH", b'{"a": 1}')),
        (b"QUEUE PAUSE *", (b"QUEUE", b"PAUSE *")),
    ],
)
def test_split_command(line: bytes, parts: tuple[bytes, bytes | None]) -> None:
    assert split_command(line) == parts


def test_recorded_split_and_pipelined_writes() -> None:
    """Transcript 20: a command split over three writes, three pipelined in one."""
    sent = [e.data for e in load("20_malformed_line") if e.conn == "c1" and e.kind == "send"]
    reader = LineReader()
    lines: list[bytes] = []
    for chunk in sent:
        reader.feed(chunk)
        lines += drain(reader)
    assert b'PUSH {"jid":"jid-split-0001","jobtype":"T","args":[]}' in lines
    i = lines.index(b"FETCH default")
    assert lines[i : i + 3] == [b"FETCH default", b'ACK {"jid":"jid-split-0001"}', b"INFO"]
    assert b"INFO\rFOO" in lines and b"INFO\x00" in lines


def test_line_of_exactly_the_cap_with_its_cr_pending() -> None:
    reader = LineReader(max_line=4)
    reader.feed(b"INFO\r")
    assert reader.next_line() is None
    reader.feed(b"\n")
    assert reader.next_line() == b"INFO"
