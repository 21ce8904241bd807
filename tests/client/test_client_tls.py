"""TLS: certificates and host names are verified unless the caller says otherwise.

The peer uses the suite's self-signed certificate (``tls_cert``), valid for ``localhost``
only, so connecting to 127.0.0.1 must fail the host name check.
"""

from __future__ import annotations

import socket
import ssl

import pytest
from tests.client.conftest import MakeClient
from tests.client.peer import ReadLine, ScriptedPeer, Send
from tests.servers import TLSFiles

import werk

SCRIPT = [Send(b'+HI {"v":2}\r\n'), ReadLine(), Send(b"+OK\r\n"), ReadLine(), Send(b"$2\r\n{}\r\n")]


def tls_peer(tls_cert: TLSFiles, script: list) -> ScriptedPeer:  # type: ignore[type-arg]
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.load_cert_chain(*tls_cert)

    def wrap(sock: socket.socket) -> socket.socket:
        sock.settimeout(5)
        return server.wrap_socket(sock, server_side=True)

    return ScriptedPeer([script], wrap=wrap)


def test_unknown_certificate_is_refused_by_default(
    tls_cert: TLSFiles, make_client: MakeClient
) -> None:
    peer = tls_peer(tls_cert, SCRIPT)
    client = make_client(f"tcp+tls://localhost:{peer.port}")
    with pytest.raises(werk.ConnectError, match=r"CERTIFICATE_VERIFY_FAILED|certificate verify"):
        client.info()
    with pytest.raises((ssl.SSLError, OSError)):
        peer.check()  # the server side saw the handshake fail: nothing was exchanged
    assert peer.lines[0] == []


def test_trusted_certificate_works(tls_cert: TLSFiles, make_client: MakeClient) -> None:
    ctx = ssl.create_default_context(cafile=str(tls_cert.cert))
    with tls_peer(tls_cert, SCRIPT) as peer:
        client = make_client(f"tcp+tls://localhost:{peer.port}", ssl_context=ctx)
        assert client.info() == {}
    assert peer.lines[0][1] == b"INFO\r\n"


def test_host_name_is_verified(tls_cert: TLSFiles, make_client: MakeClient) -> None:
    ctx = ssl.create_default_context(cafile=str(tls_cert.cert))
    peer = tls_peer(tls_cert, SCRIPT)
    client = make_client(f"tcp+tls://127.0.0.1:{peer.port}", ssl_context=ctx)
    with pytest.raises(werk.ConnectError, match=r"mismatch"):
        client.info()
    with pytest.raises((ssl.SSLError, OSError)):
        peer.check()


def test_verification_can_be_turned_off_explicitly(
    tls_cert: TLSFiles, make_client: MakeClient
) -> None:
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    with tls_peer(tls_cert, SCRIPT) as peer:
        assert make_client(f"tcp+tls://127.0.0.1:{peer.port}", ssl_context=ctx).info() == {}
