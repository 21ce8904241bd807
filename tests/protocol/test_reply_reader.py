"""ReplyReader, byte by byte: every reply form, splits, caps, malformed input."""

from __future__ import annotations

import pytest
from tests.transcripts import load, names

from werk._errors import LineTooLongError, RemoteProtocolError
from werk._protocol.resp import NEED_DATA, ErrorReply, ReplyReader

STREAM = (
    b'+HI {"v":2}\r\n'
    b"+OK\r\n"
    b"+\r\n"
    b"-ERR Invalid password\r\n"
    b"-NOTUNIQUE Job not unique\r\n"
    b"-ERR\r\n"
    b"$-1\r\n"
    b"$0\r\n\r\n"
    b"$2\r\n{}\r\n"
    b"$4\r\na\r\nb\r\n"  # a bulk string may contain CRLF
    b"$3\r\n\xc3\xa9!\r\n"
    b":42\r\n"
    b":-7\r\n"
)
VALUES = [
    'HI {"v":2}',
    "OK",
    "",
    ErrorReply("ERR", "Invalid password"),
    ErrorReply("NOTUNIQUE", "Job not unique"),
    ErrorReply("ERR", ""),
    None,
    b"",
    b"{}",
    b"a\r\nb",
    "é!".encode(),
    42,
    -7,
]


def drain(reader: ReplyReader) -> list[object]:
    out = []
    while (reply := reader.next_reply()) is not NEED_DATA:
        out.append(reply)
    return out


def test_every_reply_form() -> None:
    reader = ReplyReader()
    reader.feed(STREAM)
    assert drain(reader) == VALUES
    assert reader.buffered == 0


@pytest.mark.parametrize("cut", range(1, len(STREAM)))
def test_split_at_every_byte(cut: int) -> None:
    reader = ReplyReader()
    reader.feed(STREAM[:cut])
    got = drain(reader)
    reader.feed(STREAM[cut:])
    assert got + drain(reader) == VALUES


def test_one_byte_at_a_time() -> None:
    reader = ReplyReader()
    got: list[object] = []
    for i in range(len(STREAM)):
        reader.feed(STREAM[i : i + 1])
        got += drain(reader)
    assert got == VALUES


def test_incomplete_reply_waits() -> None:
    reader = ReplyReader()
    for part in (b"$5\r\nab", b"+OK", b"+OK\r"):
        reader = ReplyReader()
        reader.feed(part)
        assert reader.next_reply() is NEED_DATA


def test_feed_and_read_shortcut_and_fallback() -> None:
    reader = ReplyReader()
    assert reader.feed_and_read(b"+OK\r\n") == "OK"
    assert reader.feed_and_read(memoryview(b"+OK\r\n")) == "OK"
    assert reader.feed_and_read(b"$2\r\n{") is NEED_DATA
    assert reader.feed_and_read(b"}\r\n") == b"{}"
    assert reader.feed_and_read(b"$5\r\n") is NEED_DATA
    assert reader.feed_and_read(b"+OK\r\n") is NEED_DATA  # the body of a bulk, not a reply
    assert reader.feed_and_read(b"\r\n") == b"+OK\r\n"
    reader2 = ReplyReader()
    reader2.feed(b"$2\r\n{}\r\n")
    assert reader2.feed_and_read(b"+OK\r\n") == b"{}"  # buffered bytes come first
    assert reader2.next_reply() == "OK"


@pytest.mark.parametrize(
    "data",
    [
        b"?what\r\n",
        b"\r\n",
        b"*1\r\n",
        b"$abc\r\n",
        b"$-2\r\n",
        b"$ 1\r\nx\r\n",
        b":\r\n",
        b":12x\r\n",
        b"$3\r\nabcXY",
        b"HTTP/1.1 400 Bad Request\r\n",
    ],
)
def test_malformed_input(data: bytes) -> None:
    reader = ReplyReader()
    reader.feed(data)
    with pytest.raises(RemoteProtocolError):
        reader.next_reply()


def test_line_cap() -> None:
    reader = ReplyReader(max_line=8)
    reader.feed(b"+1234567\r\n")  # the cap counts the line with its type byte
    assert reader.next_reply() == "1234567"
    reader.feed(b"+12345678\r\n")
    with pytest.raises(LineTooLongError):
        reader.next_reply()
    endless = ReplyReader(max_line=8)
    endless.feed(b"+" + b"x" * 20)  # no CRLF yet: fails without waiting for more
    with pytest.raises(LineTooLongError):
        endless.next_reply()


def test_bulk_cap() -> None:
    reader = ReplyReader(max_bulk=4)
    reader.feed(b"$4\r\nabcd\r\n$5\r\n")
    assert reader.next_reply() == b"abcd"
    with pytest.raises(LineTooLongError, match="5"):
        reader.next_reply()
    assert issubclass(LineTooLongError, RemoteProtocolError)


def test_error_reply_to_exception() -> None:
    import werk

    assert type(ErrorReply("ERR", "Invalid password").to_exception()) is werk.AuthenticationError
    assert type(ErrorReply("ERR", "Job not found x").to_exception()) is werk.JobNotFoundError
    assert type(ErrorReply("ERR", "unknown worker w").to_exception()) is werk.UnknownWorkerError
    exc = ErrorReply("ERR", "tracking subsystem is only available in Faktory Enterprise")
    assert type(exc.to_exception()) is werk.EnterpriseOnlyError
    assert type(ErrorReply("ERR", "shutdown in progress").to_exception()).__name__ == (
        "ShutdownInProgressError"
    )
    duplicate = ErrorReply("NOTUNIQUE", "Job not unique").to_exception()
    assert type(duplicate) is werk.NotUniqueError and (duplicate.code, duplicate.message) == (
        "NOTUNIQUE",
        "Job not unique",
    )
    other = ErrorReply("OTHER", "some code").to_exception()
    assert type(other) is werk.ServerError and (other.code, other.message) == ("OTHER", "some code")


def test_every_recorded_reply_parses_whole() -> None:
    count = 0
    for name in names():
        for entry in load(name):
            if entry.kind != "recv" or entry.abbreviated:
                continue
            reader = ReplyReader()
            reader.feed(entry.data)
            reply = reader.next_reply()
            assert reply is not NEED_DATA, (name, entry.data)
            assert reader.buffered == 0, (name, entry.data)
            count += 1
    assert count > 400


def test_recorded_huge_reply_is_read_by_its_length() -> None:
    big = [e for e in load("04_push_valid") if e.kind == "recv" and e.abbreviated]
    assert big
    head = big[0].data
    size = int(head[1 : head.index(b"\r\n")])
    reader = ReplyReader()
    reader.feed(head)
    assert reader.next_reply() is NEED_DATA
    body_start = head.index(b"\r\n") + 2
    reader.feed(b"x" * (size - (len(head) - body_start)) + b"\r\n")
    reply = reader.next_reply()
    assert isinstance(reply, bytes) and len(reply) == size


@pytest.mark.parametrize(
    ("chunk", "value"),
    [
        (b"+OK\r\n", "OK"),
        (b"$-1\r\n", None),
        (b"$2\r\n{}\r\n", b"{}"),
        (b"$4\r\na\r\nb\r\n", b"a\r\nb"),
        (b"$0\r\n\r\n", b""),
    ],
)
def test_a_whole_reply_in_one_chunk_is_read_at_once(chunk: bytes, value: object) -> None:
    reader = ReplyReader()
    assert reader.feed_and_read(chunk) == value
    assert reader.buffered == 0
    assert reader.feed_and_read(b"+OK\r\n") == "OK"


@pytest.mark.parametrize(
    "chunk",
    [b"$3\r\nab\r\n", b"$2\r\nab\r\n+OK\r\n", b"$1x\r\nab\r\n", b"$2\r\nab\n\n"],
)
def test_a_chunk_that_is_not_one_whole_bulk_string_takes_the_general_path(chunk: bytes) -> None:
    general = ReplyReader()
    general.feed(chunk)
    expected: list[object] = []
    try:
        while (reply := general.next_reply()) is not NEED_DATA:
            expected.append(reply)
    except RemoteProtocolError as exc:
        expected.append(type(exc))
    got: list[object] = []
    reader = ReplyReader()
    try:
        reply = reader.feed_and_read(chunk)
        while reply is not NEED_DATA:
            got.append(reply)
            reply = reader.next_reply()
    except RemoteProtocolError as exc:
        got.append(type(exc))
    assert got == expected


def test_a_whole_bulk_string_over_the_cap_is_refused_even_in_one_chunk() -> None:
    with pytest.raises(LineTooLongError):
        ReplyReader(max_bulk=4).feed_and_read(b"$5\r\nhello\r\n")
