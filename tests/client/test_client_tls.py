"""TLS: certificates and host names are verified unless the caller says otherwise.

A self-signed certificate for ``localhost`` is generated with the ``cryptography`` package
(skipped with a reason when it is not installed).
"""

from __future__ import annotations

import datetime
import ipaddress
import socket
import ssl
from pathlib import Path

import pytest
from tests.client.conftest import MakeClient
from tests.client.peer import ReadLine, ScriptedPeer, Send

import werk

x509 = pytest.importorskip("cryptography.x509", reason="TLS tests need the cryptography package")
from cryptography.hazmat.primitives import hashes, serialization  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import ec  # noqa: E402
from cryptography.x509.oid import NameOID  # noqa: E402

SCRIPT = [Send(b'+HI {"v":2}\r\n'), ReadLine(), Send(b"+OK\r\n"), ReadLine(), Send(b"$2\r\n{}\r\n")]


@pytest.fixture(scope="module")
def cert_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate valid for the name ``localhost`` only (not 127.0.0.1)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    folder = tmp_path_factory.mktemp("tls")
    cert_path, key_path = folder / "cert.pem", folder / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    assert ipaddress.ip_address("127.0.0.1")  # the address the certificate does NOT name
    return cert_path, key_path


def tls_peer(cert_files: tuple[Path, Path], script: list) -> ScriptedPeer:  # type: ignore[type-arg]
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.load_cert_chain(*cert_files)

    def wrap(sock: socket.socket) -> socket.socket:
        sock.settimeout(5)
        return server.wrap_socket(sock, server_side=True)

    return ScriptedPeer([script], wrap=wrap)


def test_unknown_certificate_is_refused_by_default(
    cert_files: tuple[Path, Path], make_client: MakeClient
) -> None:
    peer = tls_peer(cert_files, SCRIPT)
    client = make_client(f"tcp+tls://localhost:{peer.port}")
    with pytest.raises(werk.ConnectError, match=r"CERTIFICATE_VERIFY_FAILED|certificate verify"):
        client.info()
    with pytest.raises((ssl.SSLError, OSError)):
        peer.check()  # the server side saw the handshake fail: nothing was exchanged
    assert peer.lines[0] == []


def test_trusted_certificate_works(cert_files: tuple[Path, Path], make_client: MakeClient) -> None:
    ctx = ssl.create_default_context(cafile=str(cert_files[0]))
    with tls_peer(cert_files, SCRIPT) as peer:
        client = make_client(f"tcp+tls://localhost:{peer.port}", ssl_context=ctx)
        assert client.info() == {}
    assert peer.lines[0][1] == b"INFO\r\n"


def test_host_name_is_verified(cert_files: tuple[Path, Path], make_client: MakeClient) -> None:
    ctx = ssl.create_default_context(cafile=str(cert_files[0]))
    peer = tls_peer(cert_files, SCRIPT)
    client = make_client(f"tcp+tls://127.0.0.1:{peer.port}", ssl_context=ctx)
    with pytest.raises(werk.ConnectError, match=r"mismatch"):
        client.info()
    with pytest.raises((ssl.SSLError, OSError)):
        peer.check()


def test_verification_can_be_turned_off_explicitly(
    cert_files: tuple[Path, Path], make_client: MakeClient
) -> None:
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    with tls_peer(cert_files, SCRIPT) as peer:
        assert make_client(f"tcp+tls://127.0.0.1:{peer.port}", ssl_context=ctx).info() == {}
