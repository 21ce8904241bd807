"""Property tests: chunking never changes what is read; encoding and decoding round-trip."""

from __future__ import annotations

import itertools
import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from werk._job import Job
from werk._protocol import command_lines as commands
from werk._protocol.command_lines import LineReader, split_command
from werk._protocol.resp import (
    NEED_DATA,
    ErrorReply,
    ReplyReader,
    encode_bulk,
    encode_error,
    encode_simple,
)

line_text = st.text(
    st.characters(blacklist_categories=("Cs",), blacklist_characters="\r\n"), max_size=40
)
word = st.text(st.characters(min_codepoint=33, max_codepoint=126), min_size=1, max_size=12)
replies = st.one_of(
    line_text.map(lambda t: (encode_simple(t), t)),
    st.tuples(word, line_text).map(
        lambda cm: (encode_error(cm[1], cm[0]), ErrorReply(cm[0], cm[1]))
    ),
    st.binary(max_size=300).map(lambda b: (encode_bulk(b), b)),
    st.just((encode_bulk(None), None)),
)
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**53), 2**53)
    | st.text(max_size=20)
    | st.floats(allow_nan=False, allow_infinity=False),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)


def chunked(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts})
    edges = [0, *points, len(data)]
    return [data[a:b] for a, b in itertools.pairwise(edges)]


@settings(max_examples=300, deadline=None)
@given(st.lists(replies, min_size=1, max_size=12), st.lists(st.integers(0, 10_000), max_size=20))
def test_reply_reader_chunking_invariance(items: list[tuple[bytes, Any]], cuts: list[int]) -> None:
    stream = b"".join(wire for wire, _ in items)
    reader = ReplyReader()
    got: list[Any] = []
    for chunk in chunked(stream, cuts):
        reader.feed(chunk)
        while (reply := reader.next_reply()) is not NEED_DATA:
            got.append(reply)
    assert got == [value for _, value in items]
    assert reader.buffered == 0


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.binary(max_size=60).map(lambda b: b.replace(b"\n", b"")), min_size=1, max_size=10),
    st.lists(st.integers(0, 10_000), max_size=20),
    st.booleans(),
)
def test_line_reader_chunking_invariance(lines: list[bytes], cuts: list[int], crlf: bool) -> None:
    lines = [line.rstrip(b"\r") for line in lines]
    stream = b"".join(line + (b"\r\n" if crlf else b"\n") for line in lines)
    reader = LineReader()
    got: list[bytes] = []
    for chunk in chunked(stream, cuts):
        reader.feed(chunk)
        while (line := reader.next_line()) is not None:
            got.append(line)
    assert got == lines


@settings(max_examples=200, deadline=None)
@given(
    word.filter(lambda w: w.isprintable()),
    st.lists(json_values, max_size=5),
    st.one_of(st.none(), st.integers(-5, 30)),
    st.dictionaries(st.text(min_size=1, max_size=8), json_values, max_size=3),
)
def test_push_round_trip(
    jobtype: str, args: list[Any], retry: int | None, custom: dict[str, Any]
) -> None:
    job = Job(jobtype, args, retry=retry, custom=custom or None, queue="q.1-x_y")
    reader = LineReader()
    reader.feed(commands.push(job.to_dict()))
    line = reader.next_line()
    assert line is not None
    verb, arg = split_command(line)
    assert verb == b"PUSH" and arg is not None
    decoded = json.loads(arg)
    assert decoded == json.loads(json.dumps(job.to_dict()))
    back = Job.from_dict(decoded)
    assert back == job


@settings(max_examples=200, deadline=None)
@given(st.lists(word, min_size=1, max_size=6))
def test_fetch_and_queue_round_trip(queues: list[str]) -> None:
    for line, verb in (
        (commands.fetch(queues), b"FETCH"),
        (commands.queue("PAUSE", queues), b"QUEUE"),
    ):
        reader = LineReader()
        reader.feed(line)
        got = reader.next_line()
        assert got is not None
        v, arg = split_command(got)
        assert v == verb and arg is not None
        names = arg.decode().split(" ")
        assert (names if verb == b"FETCH" else names[1:]) == queues
