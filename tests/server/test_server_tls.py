"""TLS: with a certificate and key the server speaks only TLS (1.2+)."""

from __future__ import annotations

import shutil
import socket
import ssl
import subprocess

import pytest

from werk.server import EmbeddedServer

pytestmark = pytest.mark.skipif(shutil.which("openssl") is None, reason="needs openssl")


@pytest.fixture(scope="module")
def cert(tmp_path_factory):
    d = tmp_path_factory.mktemp("tls")
    files = ["-keyout", str(d / "key.pem"), "-out", str(d / "cert.pem")]
    subject = ["-subj", "/CN=localhost", "-addext", "subjectAltName=IP:127.0.0.1"]
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            *files,
            *subject,
        ],
        check=True,
        capture_output=True,
    )
    return d / "cert.pem", d / "key.pem"


def test_tls_handshake_then_faktory(cert):
    cert_file, key_file = cert
    with EmbeddedServer(tls_cert=str(cert_file), tls_key=str(key_file)) as srv:
        assert srv.url.startswith("tcp+tls://")
        ctx = ssl.create_default_context(cafile=str(cert_file))
        raw = socket.create_connection((srv.host, srv.port))
        with ctx.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
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
