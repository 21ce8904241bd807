"""Go's JSON and time texts, reproduced byte for byte (decoder errors reach clients)."""

from __future__ import annotations

import pytest

from werk.server._glob import Glob
from werk.server._gojson import GoDecoder, GoJSONError, go_dumps, go_float, syntax_error
from werk.server._gotime import parse_rfc3339
from werk.server._payload import JobCodec


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "unexpected end of JSON input"),
        (b"{not json}", "invalid character 'n' looking for beginning of object key string"),
        (b"[not json]", "invalid character 'o' in literal null (expecting 'u')"),
        (b'{"a":1} xyz', "invalid character 'x' after top-level value"),
        (b'{"a" 1}', "invalid character '1' after object key"),
        (b'{"a":1 "b":2}', "invalid character '\"' after object key:value pair"),
        (b"[1 2]", "invalid character '2' after array element"),
        (b'"\\q"', "invalid character 'q' in string escape code"),
        (b'"\\u12x4"', "invalid character 'x' in \\u hexadecimal character escape"),
        (b"-x", "invalid character 'x' in numeric literal"),
        (b"1.e5", "invalid character 'e' after decimal point in numeric literal"),
        (b"1e+", "unexpected end of JSON input"),
        (b"1ex", "invalid character 'x' in exponent of numeric literal"),
        (b'"a\x01"', "invalid character '\\x01' in string literal"),
        (b"'a'", "invalid character '\\'' looking for beginning of value"),
        (b"NaN", "invalid character 'N' looking for beginning of value"),
        (b'{"ok":true}', None),
    ],
)
def test_syntax_errors_match_go(data, message):
    assert syntax_error(data) == message


def test_decoder_prefers_go_text_and_go_numbers():
    dec = GoDecoder()
    with pytest.raises(GoJSONError, match="after top-level value"):
        dec.loads(b"[1] [2]")
    assert dec.loads(b"[2.0, 1e2, 2.5, 9007199254740993, 12345678901234567890]") == [
        2,
        100,
        2.5,
        9007199254740992,
        12345678901234567000,
    ]


@pytest.mark.parametrize(
    ("data", "value"),
    [
        (b' \t\r\n{"a": [1, "x"]} \r\n', {"a": [1, "x"]}),
        (b"7", 7),
        (b'"\\ud800"', "\ufffd"),  # a lone surrogate escape, as Go decodes it
    ],
)
def test_decoder_takes_whitespace_around_a_value(data: bytes, value: object) -> None:
    assert GoDecoder().loads(data) == value


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "unexpected end of JSON input"),
        (b" \n ", "unexpected end of JSON input"),
        (b"{} x", "invalid character 'x' after top-level value"),
        (b"1 2", "invalid character '2' after top-level value"),
    ],
)
def test_decoder_refuses_nothing_and_extra_data(data: bytes, message: str) -> None:
    with pytest.raises(GoJSONError) as info:
        GoDecoder().loads(data)
    assert str(info.value) == message


def test_encoder_escapes_like_go():
    assert go_dumps(["<a&b>", "\u2028", "é", "\x08\x0c\\b"]) == (
        b'["\\u003ca\\u0026b\\u003e","\\u2028","\xc3\xa9","\\u0008\\u000c\\\\b"]'
    )
    assert go_dumps({"b": 1, "a": {"d": 1, "c": 2}}) == b'{"a":{"c":2,"d":1},"b":1}'


@pytest.mark.parametrize(
    ("value", "text"),
    [(0.0, "0"), (3.0, "3"), (0.5, "0.5"), (1e-5, "0.00001"), (1e-7, "1e-7"), (1e21, "1e+21")],
)
def test_floats_print_like_go(value, text):
    assert go_float(value) == text


def test_job_type_errors_name_the_go_field():
    codec = JobCodec()
    field = "json: cannot unmarshal {} into Go struct field Job.{}"
    cases = {
        b'{"jid":1}': field.format("number", "jid of type string"),
        b'{"retry":"5"}': field.format("string", "retry of type int"),
        b'{"retry":1.5}': field.format("number 1.5", "retry of type int"),
        b'{"args":{}}': field.format("object", "args of type []interface {}"),
        b"[]": "json: cannot unmarshal array into Go value of type client.Job",
    }
    for data, message in cases.items():
        with pytest.raises(GoJSONError) as info:
            codec.decode_job(data)
        assert str(info.value) == message


def test_job_encoding_keeps_the_struct_order_and_drops_unknown_keys():
    codec = JobCodec()
    job = codec.decode_job(
        b'{"args":[1],"jobtype":"T","jid":"jid-order-001","priority":9,"custom":{},'
        b'"retry":3,"reserve_for":0,"at":"","queue":"q"}'
    )
    assert codec.encode(job) == (
        b'{"retry":3,"jid":"jid-order-001","queue":"q","jobtype":"T","args":[1]}'
    )


def test_rfc3339_parse_errors_are_gos():
    with pytest.raises(ValueError) as info:
        parse_rfc3339("2030-01-01 10:00:00")
    assert str(info.value) == (
        'parsing time "2030-01-01 10:00:00" as "2006-01-02T15:04:05.999999999Z07:00": '
        'cannot parse " 10:00:00" as "T"'
    )
    with pytest.raises(ValueError, match="month out of range"):
        parse_rfc3339("2030-13-01T00:00:00Z")
    assert parse_rfc3339("1970-01-01T01:00:00.25+01:00") == 0.25


def test_redis_glob():
    assert Glob(b"*uid:jid-sched-S2a*").match(b'{"args":["uid:jid-sched-S2a"]}')
    assert Glob(b"h?llo").match(b"hallo")
    assert Glob(b"h[^e]llo").match(b"hallo")
    assert not Glob(b"h[^e]llo").match(b"hello")
    assert Glob(b"h[a-c]llo").match(b"hbllo")
    assert not Glob(b"a\\*").match(b"ab")


def test_lone_surrogate_escapes_decode_as_replacement_characters_as_in_go():
    value = GoDecoder().loads(b'{"k\\udc00":["\\ud800x","\\ud83d\\ude00","\\\\ud800",1]}')
    assert value == {"k\ufffd": ["\ufffdx", "\U0001f600", "\\ud800", 1]}
