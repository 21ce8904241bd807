"""The resource bounds the README states, each enforced: past it a clear error or a
pause, the connection closed where it says so, the server and its other clients unharmed.
"""

from __future__ import annotations

import json
import socket
import threading
import time

from tests.server.rawclient import Raw
from tests.servers import ServerFactory

from werk._protocol.command_lines import MAX_COMMAND_LINE
from werk._protocol.resp import ErrorReply
from werk.server._server_connection import HANDSHAKE_MAX_LINE, OUTPUT_LIMIT


def test_the_default_line_limit_is_16_mib_and_the_largest_job_fits_just_under_it(
    make_server: ServerFactory,
):
    assert MAX_COMMAND_LINE == 16 * 1024 * 1024
    srv = make_server()
    with Raw(srv, timeout=60) as c, Raw(srv) as other:
        head = b'PUSH {"jid":"jid-largest-01","jobtype":"T","args":["'
        tail = b'"]}'
        fill = MAX_COMMAND_LINE - len(head) - len(tail)
        assert c.cmd(head + b"x" * fill + tail) == "OK"  # exactly the limit: accepted
        job = c.fetch()
        assert job["jid"] == "jid-largest-01" and len(job["args"][0]) == fill
        c.send(head + b"x" * (fill + 1) + tail + b"\r\n")  # one byte more: refused
        reply = c.read()
        assert reply == ErrorReply(
            "ERR", f"line longer than {MAX_COMMAND_LINE} bytes; closing the connection"
        )
        assert c.closed_by_server()
        assert other.push("jid-unharmed-01") == "OK"
        assert srv.info()["queues"] == {"default": 1}  # nothing of the refused line


def test_an_error_echoing_a_long_line_reaches_werks_client_reader_whole(make_server: ServerFactory):
    # "-ERR invalid ACK <the whole line>": werk's reply reader takes lines that long.
    srv = make_server()
    with Raw(srv, timeout=60) as c:
        garbage = b"y" * (4 * 1024 * 1024)
        reply = c.cmd(b"ACK " + garbage)
        assert isinstance(reply, ErrorReply)
        assert reply.message.encode() == b"invalid ACK " + garbage


def test_before_hello_a_line_may_hold_64_kib(make_server: ServerFactory):
    srv = make_server()
    with Raw(srv) as other:
        sock = socket.create_connection((srv.host, srv.port), timeout=10)
        assert sock.recv(100) == b'+HI {"v":2}\r\n'
        sock.sendall(b"HELLO {" + b" " * HANDSHAKE_MAX_LINE)  # no newline, past the cap
        data = b""
        while chunk := sock.recv(4096):
            data += chunk
        assert data == (
            b"-ERR line longer than %d bytes; closing the connection\r\n" % HANDSHAKE_MAX_LINE
        )
        sock.close()
        # A long HELLO within the cap is fine, and so is the line limit after it.
        labels = ["l" * 100] * 300  # a 30 KiB HELLO
        with socket.create_connection((srv.host, srv.port), timeout=10) as ok:
            ok.recv(100)
            hello = {"v": 2, "wid": "wid-labels", "hostname": "h", "pid": 1, "labels": labels}
            ok.sendall(b"HELLO " + json.dumps(hello).encode() + b"\r\n")
            assert ok.recv(100) == b"+OK\r\n"
        assert other.push("jid-unharmed-02") == "OK"


def test_a_client_that_does_not_read_its_replies_is_not_read_from(make_server: ServerFactory):
    srv = make_server()
    with Raw(srv, timeout=60) as hog, Raw(srv) as other:
        sent = 50_000  # INFO replies of ~600 bytes: ~30 MB, past the limit and socket buffers
        sender = threading.Thread(target=hog.send, args=(b"INFO\r\n" * sent,), daemon=True)
        sender.start()
        deadline = time.monotonic() + 30
        while not srv.call(lambda: any(c._output_paused for c in srv.server.connections)):
            assert time.monotonic() < deadline, "the server never stopped reading"
            time.sleep(0.01)
        waiting = srv.call(
            lambda: max(c.transport.get_write_buffer_size() for c in srv.server.connections)
        )
        assert waiting <= OUTPUT_LIMIT + 4096  # bounded: one reply past the limit at most
        assert srv.server.stats.commands < sent  # the rest waits unread, in the socket
        assert other.push("jid-unharmed-03") == "OK"
        # Once the client reads, every reply comes, in order, none lost.
        replies = [hog.read() for _ in range(sent)]
        assert all(json.loads(r)["faktory"] for r in replies)
        sender.join(30)
        assert hog.cmd("INFO") is not None
