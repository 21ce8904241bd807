"""TLS: with a certificate and key the server speaks only TLS (1.2+)."""

from __future__ import annotations

import socket
import ssl


def test_tls_handshake_then_faktory(make_server, tls_cert):
    srv = make_server(tls_cert=str(tls_cert.cert), tls_key=str(tls_cert.key))
    assert srv.url.startswith("tcp+tls://")
    ctx = ssl.create_default_context(cafile=str(tls_cert.cert))
    raw = socket.create_connection((srv.host, srv.port))
    with ctx.wrap_socket(raw, server_hostname="localhost") as tls:  # the certificate's name
        assert tls.recv(100) == b'+HI {"v":2}\r\n'
        tls.sendall(b'HELLO {}\r\nPUSH {"jid":"jid-tls-00001","jobtype":"T","args":[]}\r\n')
        data = b""
        while data.count(b"\r\n") < 2:
            data += tls.recv(100)
        assert data == b"+OK\r\n+OK\r\n"
    # A plaintext client gets no Faktory bytes, and the server stays up.
    with socket.create_connection((srv.host, srv.port), timeout=5) as plain:
        plain.sendall(b"HELLO {}\r\n")
        assert not plain.recv(100).startswith(b"+HI")
    assert srv.info()["queues"] == {"default": 1}
