"""MUTATE's glob: Redis's semantics, held against a transcription of Redis's own matcher,
and no pattern makes the server slow (CVE-2022-36021's class of bug)."""

from __future__ import annotations

import fnmatch
import functools
import json
import re

from hypothesis import given, settings
from hypothesis import strategies as st
from tests.server.rawclient import Raw
from tests.servers import ServerFactory

from werk._protocol.resp import ErrorReply
from werk.server._glob import MAX_PATTERN, Glob


def redis_match(pattern: bytes, subject: bytes) -> bool:
    """Redis's ``stringmatchlen`` (util.c, 7.x) transcribed step by step, reads past the end
    included (Redis's patterns are NUL-terminated: such a read sees 0). Exponential in the
    worst case: for small inputs only."""

    def p(k: int) -> int:
        return pattern[k] if k < len(pattern) else 0

    @functools.cache
    def run(pi: int, si: int) -> bool:
        plen, slen = len(pattern) - pi, len(subject) - si
        while plen and slen:
            c = p(pi)
            if c == ord("*"):
                while plen and p(pi + 1) == ord("*"):
                    pi, plen = pi + 1, plen - 1
                if plen == 1:
                    return True
                while slen:
                    if run(pi + 1, si):
                        return True
                    si, slen = si + 1, slen - 1
                return False
            if c == ord("?"):
                si, slen = si + 1, slen - 1
            elif c == ord("["):
                pi, plen = pi + 1, plen - 1
                negate = p(pi) == ord("^")
                if negate:
                    pi, plen = pi + 1, plen - 1
                matched = False
                while True:
                    if p(pi) == ord("\\") and plen >= 2:
                        pi, plen = pi + 1, plen - 1
                        matched |= p(pi) == subject[si]
                    elif p(pi) == ord("]"):
                        break
                    elif plen == 0:
                        pi, plen = pi - 1, plen + 1
                        break
                    elif plen >= 3 and p(pi + 1) == ord("-"):
                        lo, hi = sorted((p(pi), p(pi + 2)))
                        pi, plen = pi + 2, plen - 2
                        matched |= lo <= subject[si] <= hi
                    else:
                        matched |= p(pi) == subject[si]
                    pi, plen = pi + 1, plen - 1
                if negate:
                    matched = not matched
                if not matched:
                    return False
                si, slen = si + 1, slen - 1
            else:
                if c == ord("\\") and plen >= 2:
                    pi, plen = pi + 1, plen - 1
                if p(pi) != subject[si]:
                    return False
                si, slen = si + 1, slen - 1
            pi, plen = pi + 1, plen - 1
            if slen == 0:
                while p(pi) == ord("*"):
                    pi, plen = pi + 1, plen - 1
                break
        return plen == 0 and slen == 0

    return run(0, 0)


# Few distinct bytes, so that patterns and subjects meet often; every special byte included.
_pattern = st.lists(
    st.sampled_from([b"a", b"b", b"-", b"]", b"[", b"^", b"\\", b"*", b"?", b"\xc3", b"z"]),
    max_size=14,
).map(b"".join)
_subject = st.lists(
    st.sampled_from([b"a", b"b", b"-", b"]", b"[", b"^", b"\\", b"*", b"z", b"\xc3"]),
    max_size=16,
).map(b"".join)


@settings(max_examples=3000, deadline=None)
@given(pattern=_pattern, subject=_subject)
def test_matches_what_redis_matches(pattern, subject):
    assert Glob(pattern).match(subject) == redis_match(pattern, subject)


@settings(max_examples=1000, deadline=None)
@given(
    pattern=st.binary(max_size=12),
    subject=st.binary(max_size=12),
)
def test_matches_what_redis_matches_on_any_bytes(pattern, subject):
    assert Glob(pattern).match(subject) == redis_match(pattern, subject)


_safe = st.text(alphabet="abc*?", max_size=12)


@settings(max_examples=1000, deadline=None)
@given(pattern=_safe, subject=st.text(alphabet="abc", min_size=1, max_size=16))
def test_agrees_with_fnmatch_where_their_syntaxes_agree(pattern, subject):
    # Stars and question marks mean the same in both (non-empty subjects: see the edge case).
    assert Glob(pattern.encode()).match(subject.encode()) == fnmatch.fnmatchcase(subject, pattern)


def test_redis_edge_cases():
    cases = [
        (b"", b"", True),
        (b"*", b"", False),  # an empty subject matches only the empty pattern
        (b"a\\", b"a\\", True),  # a trailing backslash is literal
        (b"\\*", b"*", True),
        (b"\\*", b"a", False),
        (b"[]a]", b"]", False),  # "]" right after "[" closes an empty class...
        (b"[]a]", b"a]", False),
        (b"[^]a", b"xa", True),  # ...and "[^]" is any byte
        (b"[abc", b"b", True),  # an unclosed class runs to the end
        (b"[abc", b"[", False),
        (b"a[", b"a[", False),  # "[" at the end: an empty class
        (b"a[^", b"ax", True),  # "[^" at the end: any byte
        (b"[z-a]", b"m", True),  # reversed range
        (b"[a-]", b"^", True),  # "a-]" is the range "]".."a", and the class is unclosed
        (b"[a-]", b"-", False),
        (b"[\\]]", b"]", True),
        (b"[a\\-z]", b"-", True),
        (b"[a\\-z]", b"m", False),
        (b"[a-c-e]", b"-", True),
        (b"?", b"\xc3\xa9", False),  # bytes, not characters
        (b"??", b"\xc3\xa9", True),
        (b"*a", b"ba", True),
        (b"**a**", b"a", True),
        (b"a*", b"a", True),
        (b"a*b*c", b"axxbyyc", True),
        (b"a*b*c", b"axxbyyb", False),
    ]
    for pattern, subject, want in cases:
        assert redis_match(pattern, subject) == want, (pattern, subject, "reference")
        assert Glob(pattern).match(subject) == want, (pattern, subject)


def test_pathological_patterns_cost_one_search_per_segment():
    big = b"x" * 200_000
    stars = Glob(b"*" * 60 + b"a")
    assert stars.segments == 2  # however many stars: one star, then "a" at the end
    alphabet = Glob(b"*" + b"*".join(bytes([c]) for c in b"abcdefghijklmnopqrstuvwxyz") + b"*")
    assert alphabet.segments == 28
    assert not stars.match(big) and not alphabet.match(big)
    assert alphabet.match(bytes(range(97, 123)) * 2)


def _job(i: int, pad: int) -> bytes:
    job = {"jid": f"jid-glob-{i:06d}", "jobtype": "Slow", "args": ["x" * pad]}
    job["at"] = "2099-01-01T00:00:00Z"
    return b"PUSH " + json.dumps(job, separators=(",", ":")).encode()


def test_mutate_with_pathological_patterns_answers_and_leaves_the_server_responsive(
    make_server: ServerFactory,
):
    # Exponential matching (the old regex translation) took ~40 s for five stars over one
    # 300-byte job and grew 60-100x per star; forty stars over 200 jobs of 64 KiB would
    # never finish. The bound here only has to separate "polynomial" from "exponential".
    patterns = [
        "*" * 40 + "a",
        "*a*b*c*d*e*f*g*h*i*j*k*l*m*n*o*p*q*r*s*t*u*v*w*y*z*",
        "*" + "?*" * 30 + "Q",
        "*[a-c]*" * 20 + "Q",
    ]
    srv = make_server()
    with Raw(srv, timeout=120) as c, Raw(srv) as other:
        for i in range(200):
            assert c.cmd(_job(i, 64 * 1024)) == "OK"
        for pattern in patterns:
            op = {"cmd": "kill", "target": "scheduled", "filter": {"regexp": pattern}}
            assert c.cmd("MUTATE " + json.dumps(op, separators=(",", ":"))) == "OK"
            assert other.push("jid-other-0001") == "OK"
            assert other.fetch()["jid"] == "jid-other-0001"
        # Nothing matched (no "Q", no "z" after "y"...): every job is still scheduled.
        assert srv.info()["scheduled"] == 200 and srv.info()["dead"] == 0
        op = {"cmd": "kill", "target": "scheduled", "filter": {"regexp": "*" * 40 + "}"}}
        assert c.cmd("MUTATE " + json.dumps(op, separators=(",", ":"))) == "OK"
        assert srv.info()["scheduled"] == 0 and srv.info()["dead"] == 200


def test_too_long_a_pattern_is_refused_and_nothing_changes(make_server: ServerFactory):
    srv = make_server()
    with Raw(srv) as c:
        assert c.push("jid-keep-000001", at="2099-01-01T00:00:00Z") == "OK"
        too_long = "*" * (MAX_PATTERN + 1)
        op = {"cmd": "discard", "target": "scheduled", "filter": {"regexp": too_long}}
        reply = c.cmd("MUTATE " + json.dumps(op, separators=(",", ":")))
        assert isinstance(reply, ErrorReply)
        assert re.fullmatch(rf"regexp filter longer than {MAX_PATTERN} bytes", reply.message)
        op["filter"] = {"regexp": "*" * MAX_PATTERN}
        assert srv.info()["scheduled"] == 1
        assert c.cmd("MUTATE " + json.dumps(op, separators=(",", ":"))) == "OK"
        assert srv.info()["scheduled"] == 0
