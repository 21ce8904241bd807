"""The servers of werk's own tests: how they start, their one manual-clock epoch, TLS files.

Tests do not build servers themselves: they take the fixtures of ``tests/conftest.py``
(``make_server``, ``server``, ``clock_server``, ``tls_cert``) or werk's public pytest
plugin (``faktory_server``, ``faktory_server_password``, ``manual_server``,
``faktory_url``). This module holds what those fixtures share and what tests import.

Example::

    def test_restart_keeps_the_job(make_server: ServerFactory, tmp_path: Path) -> None:
        srv = make_server(storage="sqlite", data_dir=tmp_path)
        ...
        srv.stop()
        srv = make_server(storage="sqlite", data_dir=tmp_path)  # the same data
"""

from __future__ import annotations

import datetime
from pathlib import Path
from typing import Any, NamedTuple

from werk.server import EmbeddedServer
from werk.server._clock import Clock
from werk.testing import MANUAL_EPOCH

__all__ = ["FETCH_BLOCK", "MANUAL_EPOCH", "ServerFactory", "TLSFiles", "self_signed"]

# FETCH blocks this long on the worker-side test servers (2 s on a real one): a stopping
# worker waits for its blocked FETCHes, so a short block keeps the suite quick without
# changing behaviour.
FETCH_BLOCK = 0.3


class ServerFactory:
    """``make_server(storage=..., password=..., clock=..., **options)``: a started server.

    Every keyword is :class:`~werk.server.EmbeddedServer`'s (``data_dir``, ``bind``,
    ``fetch_timeout``, ``max_line``, ``tls_cert``...). Each server runs in its own thread
    on a free port of 127.0.0.1 and is stopped when the test ends; ``srv.stop()`` earlier
    is fine (to restart on the same data, or to end one of many in a loop).
    """

    def __init__(self) -> None:
        self.started: list[EmbeddedServer] = []

    def __call__(
        self,
        *,
        storage: str = "memory",
        password: str | None = None,
        clock: Clock | None = None,
        **options: Any,
    ) -> EmbeddedServer:
        srv = EmbeddedServer(storage=storage, password=password, clock=clock, **options)
        srv.start()
        self.started.append(srv)
        return srv

    def stop_all(self) -> None:
        """Stop every server this factory started, the last one first."""
        while self.started:
            self.started.pop().stop()


class TLSFiles(NamedTuple):
    """PEM files of a self-signed certificate and its private key."""

    cert: Path
    key: Path


def self_signed(folder: Path, hostname: str = "localhost") -> TLSFiles:
    """Write a self-signed certificate valid for the DNS name ``hostname`` only (so not
    for ``127.0.0.1``: host name checks have something to refuse) into ``folder``."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hostname)])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(hostname)]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    files = TLSFiles(folder / "cert.pem", folder / "key.pem")
    files.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    files.key.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return files
