"""Where the client connects: argument, FAKTORY_PROVIDER, FAKTORY_URL, default."""

from __future__ import annotations

import ssl

import pytest

import werk
from werk.client._settings import DEFAULT_URL, Endpoint, parse_url, resolve_url


def test_resolution_order() -> None:
    env = {"FAKTORY_PROVIDER": "MY_URL", "MY_URL": "tcp://a:1", "FAKTORY_URL": "tcp://b:2"}
    assert resolve_url("tcp://arg:3", env) == "tcp://arg:3"
    assert resolve_url(None, env) == "tcp://a:1"
    assert resolve_url(None, {"FAKTORY_URL": "tcp://b:2"}) == "tcp://b:2"
    assert resolve_url(None, {}) == DEFAULT_URL == "tcp://localhost:7419"


def test_provider_holding_a_url_is_refused() -> None:
    with pytest.raises(werk.ConfigurationError, match="FAKTORY_PROVIDER is not a URL"):
        resolve_url(None, {"FAKTORY_PROVIDER": "tcp://x:7419"})


def test_provider_naming_an_unset_variable() -> None:
    with pytest.raises(
        werk.ConfigurationError, match=r"^FAKTORY_PROVIDER set to invalid value: NOPE_URL$"
    ):
        resolve_url(None, {"FAKTORY_PROVIDER": "NOPE_URL", "FAKTORY_URL": "tcp://b:2"})


def test_client_reads_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FAKTORY_PROVIDER", raising=False)
    monkeypatch.setenv("FAKTORY_URL", "tcp+tls://:pw@faktory.example.com")
    client = werk.Client()
    assert client.settings.endpoint == Endpoint("faktory.example.com", 7419, True, "pw", None)
    monkeypatch.setenv("FAKTORY_PROVIDER", "FOO_URL")
    monkeypatch.setenv("FOO_URL", "tcp://foo:7500")
    assert werk.AsyncClient().settings.endpoint == Endpoint("foo", 7500)


@pytest.mark.parametrize(
    ("url", "endpoint"),
    [
        ("tcp://localhost", Endpoint("localhost")),
        ("tcp://localhost:7500", Endpoint("localhost", 7500)),
        ("tcp://:s3cret@h:1", Endpoint("h", 1, password="s3cret")),
        ("tcp://bob:p%40ss%3A1@h", Endpoint("h", password="p@ss:1", username="bob")),
        ("tcp://bob@h", Endpoint("h", username="bob")),
        ("tcp+tls://h", Endpoint("h", tls=True)),
        ("TCP+TLS://h/", Endpoint("h", tls=True)),
        ("tcp://[::1]:7419", Endpoint("::1")),
    ],
)
def test_parse_url(url: str, endpoint: Endpoint) -> None:
    assert parse_url(url) == endpoint


@pytest.mark.parametrize(
    "url",
    [
        "http://h:7419",
        "redis://h",
        "h:7419",
        "tcp://",
        "tcp://h:notaport",
        "tcp://h:70000",
        "tcp://h/db",
        "tcp://h?x=1",
        "tls://h",
    ],
)
def test_bad_urls(url: str) -> None:
    with pytest.raises(werk.ConfigurationError):
        werk.Client(url)


def test_errors_and_reprs_never_show_the_password() -> None:
    with pytest.raises(werk.ConfigurationError) as info:
        parse_url("http://:hunter2@h")
    assert "hunter2" not in str(info.value)
    client = werk.Client("tcp://:hunter2@h")
    assert "hunter2" not in repr(client) and "hunter2" not in str(client.settings.endpoint)


def test_password_argument_overrides_the_url() -> None:
    assert werk.Client("tcp://:a@h", password="b").settings.endpoint.password == "b"


def test_tls_verifies_by_default() -> None:
    ctx = werk.Client("tcp+tls://h").settings.ssl_context
    assert ctx is not None
    assert ctx.verify_mode == ssl.CERT_REQUIRED and ctx.check_hostname
    assert werk.Client("tcp://h").settings.ssl_context is None
    mine = ssl.create_default_context()
    assert werk.Client("tcp://h", ssl_context=mine).settings.ssl_context is mine


@pytest.mark.parametrize(
    "options",
    [
        {"timeout": 0},
        {"timeout": -1},
        {"connect_timeout": 0},
        {"wid": "a b"},
        # The real server hangs up silently on a HELLO whose labels are not an array of
        # strings (or whose hostname is not a string): refused before connecting.
        {"labels": "gpu"},
        {"labels": ["gpu", 1]},
        {"hostname": 7},
    ],
)
def test_bad_options(options: dict[str, object]) -> None:
    with pytest.raises(werk.ConfigurationError):
        werk.Client("tcp://h", **options)  # type: ignore[arg-type]
