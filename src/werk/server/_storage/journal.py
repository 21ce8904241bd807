"""An append-only journal file: the cheap durable write on the per-job path.

The SQLite storage writes the changes of each event-loop turn as one record here (one
``os.write``) before any reply goes out, and folds them into the database later, many at
once. Once ``os.write`` has returned, the bytes are in the operating system's page cache,
so they survive ``kill -9`` of the server (the same guarantee as SQLite's WAL with
``synchronous=NORMAL``); ``sync=True`` adds an ``fdatasync`` per record for power loss.

Layout: a 16-byte header (``WERKJNL``, the format version as one ASCII digit, the u64
generation), then records of ``[u32 length][u32 crc32][body]``; bodies are changes in
:func:`~werk.server._storage.ops.encode_ops`'s encoding, which the version covers too. A
file of a version this werk does not read (or not a journal at all) is refused with
:class:`~werk.server._storage.ops.JournalFormatError` rather than emptied, unless it holds
no record (a clean shutdown leaves it so): nothing is lost by starting that one afresh.
While the records of one generation are folded (in a background thread), the file is
renamed aside (:meth:`Journal.rotate`) and new records go to a fresh file of the next
generation. The generation says which fold the records belong to:
the database stores the last generation it folded, so records of an already folded
journal are never applied twice. Reading stops at the first record that is short or
fails its checksum (a write torn by a crash); the file is cut back there so that later
records are appended after the last good one.
"""

from __future__ import annotations

import contextlib
import errno
import os
import struct
import zlib

from werk.server._storage.ops import JournalFormatError

__all__ = ["FORMAT_VERSION", "Journal"]

# Version 1 held marshal-encoded records (not stable across Python versions); version 3
# added the record changes of server extensions (codes 7 to 9) to version 2's.
FORMAT_VERSION = 3
_READS = (b"2", b"3")  # every version 2 change means the same in version 3
_MAGIC = b"WERKJNL"
_HEADER = struct.Struct("<7ssQ")
_VERSION = str(FORMAT_VERSION).encode()
_RECORD = struct.Struct("<II")


class Journal:
    """One journal file (see the module docstring)."""

    def __init__(self, path: str, *, sync: bool = False) -> None:
        self.path = path
        self.sync = sync
        self.generation = 0
        self.size = 0  # bytes of header and good records
        self._fd = -1

    def open(self, next_generation: int) -> tuple[int, list[bytes]]:
        """Open (or create) the file; its generation and the bodies of its good records.

        A missing or empty file, or one whose header was torn, starts afresh with
        ``next_generation``; :class:`JournalFormatError` if it is not a journal of this
        format version.
        """
        self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o644)
        with open(self._fd, "rb", closefd=False) as f:
            data = f.read()
        if len(data) < _HEADER.size and _MAGIC.startswith(data[: len(_MAGIC)]):
            # Only reset() writes a header, right after a fold: nothing is lost here.
            self.reset(next_generation)
            return self.generation, []
        magic, version, generation = _HEADER.unpack_from(data.ljust(_HEADER.size, b"\0"))
        if magic != _MAGIC:
            self.close()
            raise JournalFormatError(f"{self.path} is not a werk journal: move it away")
        if version not in _READS:
            if len(data) == _HEADER.size:
                self.reset(next_generation)
                return self.generation, []
            self.close()
            raise JournalFormatError(
                f"{self.path} holds unfolded changes in journal format {version!r}, this werk "
                f"reads formats {b', '.join(_READS).decode()}: start the werk version that "
                "wrote it once (it folds the journal into the database), then this one"
            )
        self.generation = generation
        records: list[bytes] = []
        pos, end = _HEADER.size, len(data)
        while pos + _RECORD.size <= end:
            length, crc = _RECORD.unpack_from(data, pos)
            start = pos + _RECORD.size
            body = data[start : start + length]
            if len(body) < length or zlib.crc32(body) != crc:
                break  # torn by a crash mid-write: nothing after it was acknowledged
            records.append(body)
            pos = start + length
        if pos != end:
            os.ftruncate(self._fd, pos)
        self.size = pos
        return self.generation, records

    def append(self, body: bytes) -> None:
        """Write one record; on any failure cut the file back and raise ``OSError``."""
        data = _RECORD.pack(len(body), zlib.crc32(body)) + body
        if self.size < _HEADER.size:  # the header of the last reset failed to write
            self.reset(self.generation)
        try:
            written = os.write(self._fd, data)
            if written != len(data):  # short: the disk is full, the next call raises
                view = memoryview(data)[written:]
                while view:
                    view = view[os.write(self._fd, view) :]
            if self.sync:
                os.fdatasync(self._fd)
        except OSError:
            # A partial record would hide every later one from the replay: remove it.
            os.ftruncate(self._fd, self.size)
            raise
        self.size += len(data)

    def reset(self, generation: int) -> None:
        """Empty the file and start ``generation`` (after its records were folded)."""
        os.ftruncate(self._fd, 0)
        self.generation = generation
        self.size = 0
        try:
            if os.write(self._fd, _HEADER.pack(_MAGIC, _VERSION, generation)) != _HEADER.size:
                raise OSError(errno.ENOSPC, "short write of the journal header")
            if self.sync:
                os.fdatasync(self._fd)
        except OSError:
            os.ftruncate(self._fd, 0)
            raise
        self.size = _HEADER.size

    def rotate(self, aside: str) -> Journal:
        """Rename this file to ``aside`` (its records are about to be folded elsewhere) and
        return a fresh journal at the old path, one generation on, for the records that
        come meanwhile. Raises ``OSError`` (nothing moved) if the new file cannot be made.

        After a crash both files may exist: the older generation is read first.
        """
        os.rename(self.path, aside)
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o644)
        except OSError:
            os.rename(aside, self.path)
            raise
        self.close()
        fresh = Journal(self.path, sync=self.sync)
        fresh._fd = fd
        fresh.generation = self.generation + 1
        with contextlib.suppress(OSError):
            fresh.reset(fresh.generation)  # else append() writes the header first
        if self.sync:  # the renames and the new file must outlive a power cut too
            with contextlib.suppress(OSError):
                directory = os.open(os.path.dirname(os.path.abspath(self.path)), os.O_RDONLY)
                try:
                    os.fsync(directory)
                finally:
                    os.close(directory)
        return fresh

    def close(self) -> None:
        """Close the file (its contents stay)."""
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
