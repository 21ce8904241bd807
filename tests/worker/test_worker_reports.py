"""Which refused ACK/FAIL reports a worker sends again (the server failed) and which not."""

from __future__ import annotations

import pytest

from werk._errors import JobNotFoundError, ServerError
from werk._protocol.resp import ErrorReply
from werk.worker._slot import report_owed


@pytest.mark.parametrize(
    ("code", "message", "owed"),
    [
        ("ERR", "[Errno 27] File too large", True),  # werk's server on a full disk
        ("ERR", "[Errno 28] No space left on device", True),
        ("ERR", "database or disk is full", True),
        ("ERR", "Job not found 0123456789abcdef", False),  # already reported, or expired
        ("ERR", 'invalid ACK {"jid":1}', False),  # malformed: sending it again cannot help
        ("ERR", "missing JID", False),
    ],
)
def test_a_report_is_owed_only_when_the_server_could_not_store_it(
    code: str, message: str, owed: bool
) -> None:
    error = ErrorReply(code, message).to_exception()
    assert isinstance(error, ServerError)
    assert isinstance(error, JobNotFoundError) == message.startswith("Job not found")
    assert report_owed(error) is owed
