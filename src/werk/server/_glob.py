"""Redis glob patterns (MUTATE's ``regexp`` filter), matched without backtracking.

The real server hands the pattern to Redis (``ZSCAN ... MATCH``), so werk follows Redis's
``stringmatchlen`` byte for byte:

* ``*`` any run of bytes (runs of ``*`` are one), ``?`` any one byte, ``\\x`` the byte
  ``x`` itself; a ``\\`` that ends the pattern is a literal backslash.
* ``[...]`` one byte of a class; ``[^...]`` one byte outside it. Inside, ``\\x`` is ``x``,
  ``a-z`` is a range (either way round: ``z-a`` is the same), and the first ``]`` closes
  the class, even right after ``[`` (``[]`` matches nothing). A class left open runs to
  the end of the pattern (``[^`` alone matches any byte). Ranges compare bytes as
  unsigned numbers (Redis compares C ``char``, which is signed on x86-64: only ranges with
  an end above 0x7f can differ).
* Matching is on bytes, not characters: ``?`` is one byte of a UTF-8 sequence.
* The empty subject matches only the empty pattern (``stringmatchlen`` never enters its
  loop); job payloads are never empty.

Redis tries every split of the subject for each ``*`` (CVE-2022-36021 was patterns that made
that exponential; the fix prunes it). werk never backtracks at all: the pattern is cut at
its stars into segments of one-byte tokens; the first segment must match at the start,
the last at the end, and each middle one is found at its leftmost place after the one
before (greedy is exact for globs: an earlier place never leaves less room). Each segment
is found by ``bytes.find`` or a fixed-length regular expression without repetition, so a
match costs at most O(len(subject) * len(pattern)) byte comparisons, in C.

Example::

    >>> g = Glob(b'*"jobtype":"S?"*')
    >>> g.match(b'{"jid":"x","jobtype":"S1","args":[]}'), g.match(b'{"jobtype":"S10"}')
    (True, False)
    >>> Glob(b"*" * 40 + b"a").match(b"b" * 100_000)      # answers at once
    False
"""

from __future__ import annotations

import re
from typing import Final

__all__ = ["MAX_PATTERN", "Glob"]

MAX_PATTERN: Final = 1024
"""The longest pattern MUTATE accepts, in bytes (longer ones are refused with ``-ERR``).

Below 2,000 bytes a pattern cannot nest 1,000 stars deep, where newer Redis versions stop
matching, so werk's answers stay Redis's."""

_STAR, _QUESTION, _OPEN, _CLOSE, _BACKSLASH, _CARET, _DASH = b"*?[]\\^-"
_ALL = bytes(range(256))


def _class(pattern: bytes, i: int) -> tuple[bytes, int]:
    """The bytes a class matches (sorted) and the index after it; ``i`` is after ``[``."""
    n = len(pattern)
    negate = i < n and pattern[i] == _CARET
    if negate:
        i += 1
    members = bytearray(256)
    while i < n:  # an unclosed class runs to the end of the pattern
        c = pattern[i]
        if c == _BACKSLASH and n - i >= 2:
            members[pattern[i + 1]] = 1
            i += 2
        elif c == _CLOSE:
            i += 1
            break
        elif n - i >= 3 and pattern[i + 1] == _DASH:
            lo, hi = sorted((c, pattern[i + 2]))  # the high end may be "]" or "\"
            members[lo : hi + 1] = b"\x01" * (hi + 1 - lo)
            i += 3
        else:
            members[c] = 1
            i += 1
    want = 0 if negate else 1
    return bytes(b for b in _ALL if members[b] == want), i


def _tokens(pattern: bytes) -> list[bytes | None]:
    """The pattern as tokens: None for a star, else the set of bytes one position admits."""
    out: list[bytes | None] = []
    i, n = 0, len(pattern)
    while i < n:
        c = pattern[i]
        if c == _STAR:
            if not out or out[-1] is not None:
                out.append(None)
            i += 1
        elif c == _QUESTION:
            out.append(_ALL)
            i += 1
        elif c == _OPEN:
            members, i = _class(pattern, i + 1)
            out.append(members)
        elif c == _BACKSLASH and n - i >= 2:
            out.append(pattern[i + 1 : i + 2])
            i += 2
        else:
            out.append(pattern[i : i + 1])
            i += 1
    return out


def _class_regex(members: bytes) -> bytes:
    if len(members) == 256:
        return b"."
    if not members:
        return b"(?!)"  # matches nothing
    parts, i = [], 0
    while i < len(members):
        j = i
        while j + 1 < len(members) and members[j + 1] == members[j] + 1:
            j += 1
        parts.append(b"\\x%02x" % members[i])
        if j > i:
            parts.append(b"-\\x%02x" % members[j])
        i = j + 1
    return b"[" + b"".join(parts) + b"]"


class _Segment:
    """A run of one-byte tokens between stars: found by ``bytes.find`` when it is all
    literal bytes, else by a fixed-length regular expression (no repetition: no
    backtracking beyond its own length)."""

    __slots__ = ("literal", "regex", "size")

    def __init__(self, tokens: list[bytes]) -> None:
        self.size = len(tokens)
        self.literal: bytes | None = None
        self.regex: re.Pattern[bytes] | None = None
        if all(len(t) == 1 for t in tokens):
            self.literal = b"".join(tokens)
        else:
            self.regex = re.compile(b"".join(_class_regex(t) for t in tokens), re.DOTALL)

    def at(self, subject: bytes, pos: int) -> bool:
        """Whether the segment matches ``subject`` at ``pos``."""
        if self.literal is not None:
            return subject.startswith(self.literal, pos)
        assert self.regex is not None
        return self.regex.match(subject, pos) is not None

    def find(self, subject: bytes, start: int, end: int) -> int:
        """The leftmost place in ``subject[start:end]`` where the segment matches, or -1."""
        if self.literal is not None:
            return subject.find(self.literal, start, end)
        assert self.regex is not None
        found = self.regex.search(subject, start, end)
        return -1 if found is None else found.start()


class Glob:
    """A compiled Redis glob (see the module docstring); any bytes are a valid pattern.

    Example::

        >>> Glob(b"h[^e]llo").match(b"hallo"), Glob(b"h[a-c]llo").match(b"hdllo")
        (True, False)
        >>> Glob(b"a\\\\*").match(b"a*"), Glob(b"a\\\\*").match(b"ab")
        (True, False)
    """

    __slots__ = ("_empty", "_first", "_last", "_middle", "_min", "_star", "pattern")

    def __init__(self, pattern: bytes) -> None:
        self.pattern = pattern
        self._empty = not pattern
        tokens = _tokens(pattern)
        runs: list[list[bytes]] = [[]]
        for token in tokens:
            if token is None:
                runs.append([])
            else:
                runs[-1].append(token)
        segments = [_Segment(run) for run in runs]
        self._star = len(segments) > 1
        self._first = segments[0]
        self._last = segments[-1]
        self._middle = [s for s in segments[1:-1] if s.size]
        self._min = sum(s.size for s in segments)

    @property
    def segments(self) -> int:
        """How many searches a match makes at most (segments between stars)."""
        return 1 + len(self._middle) + (1 if self._star else 0)

    def match(self, subject: bytes) -> bool:
        """Whether the whole ``subject`` matches."""
        n = len(subject)
        if not n:
            return self._empty
        first, last = self._first, self._last
        if not self._star:
            return n == first.size and first.at(subject, 0)
        if n < self._min:
            return False
        if first.size and not first.at(subject, 0):
            return False
        end = n - last.size
        if last.size and not last.at(subject, end):
            return False
        pos = first.size
        for segment in self._middle:
            found = segment.find(subject, pos, end)
            if found < 0:
                return False
            pos = found + segment.size
        return True
