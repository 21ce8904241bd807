"""The real server's recordings are in the repository, complete and unchanged."""

from __future__ import annotations

import hashlib

import pytest
from tests.transcripts import SCENARIOS, TRANSCRIPTS, MissingRecording, load, names

CHECKSUMS = TRANSCRIPTS.parent / "transcripts.sha256"


def _checksums() -> dict[str, str]:
    sums = {}
    for line in CHECKSUMS.read_text(encoding="ascii").splitlines():
        digest, name = line.split("  ", 1)
        sums[name.removeprefix("transcripts/")] = digest
    return sums


def test_every_recording_is_listed_and_every_listed_one_is_there() -> None:
    on_disk = {p.name for p in TRANSCRIPTS.iterdir()}
    assert on_disk == {f"{name}.txt" for name in SCENARIOS} | {"README.md"}
    assert names() == list(SCENARIOS) and len(SCENARIOS) == 22


def test_recordings_are_byte_for_byte_what_was_recorded() -> None:
    sums = _checksums()
    assert set(sums) == {p.name for p in TRANSCRIPTS.iterdir()}
    for name, digest in sums.items():
        assert hashlib.sha256((TRANSCRIPTS / name).read_bytes()).hexdigest() == digest, name


@pytest.mark.parametrize("name", SCENARIOS)
def test_each_recording_has_connections_and_replies(name: str) -> None:
    entries = load(name)
    assert any(e.kind == "connect" for e in entries), name
    assert any(e.kind == "recv" for e in entries), name


def test_a_missing_recording_fails_naming_its_file() -> None:
    with pytest.raises(MissingRecording, match=r"99_not_recorded\.txt is missing"):
        load("99_not_recorded")
