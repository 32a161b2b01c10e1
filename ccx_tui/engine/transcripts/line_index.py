"""The line index beside a transcript (`lines.idx`): newline counts every 64 KiB.

Record k (a little-endian int64) is the number of newlines in the first
`(k + 1) * CHECKPOINT_BYTES` bytes of `transcript.log`: the checkpoints a
TranscriptReader builds when it scans a file.  The engine counts every chunk's
newlines anyway (for its line counts); writing them down here at each checkpoint lets
a view adopt them instead of counting the bytes a second time (counting 1 GiB costs
the app about half a second of CPU, during the flood that produced it).

The writer (`IndexWriter`, driven by TranscriptWriter) appends a record once the
transcript holds the bytes it covers, so the index never runs ahead of the file.  A
crash may leave it short (it is completed when the transcript is opened again) or
with a torn record (dropped); a copy cut short (a mirror resuming) gets the records
past its end dropped the same way.  A transcript written before the index existed has
none and gets none: readers scan it, as any other file.  Readers check what they adopt
against what they counted themselves (see reader.py).
"""

from __future__ import annotations

import contextlib
import os
import struct
from pathlib import Path

CHECKPOINT_BYTES = 64 * 1024
INDEX_NAME = "lines.idx"
RECORD = struct.Struct("<q")
_COUNT_BLOCK = 4 * 1024 * 1024


def piece_counts(data: bytes, offset: int) -> list[int]:
    """The newlines of `data`, to be written at transcript `offset`, in the pieces the
    checkpoints cut it into (their sum is ``data.count(b"\\n")``): the first piece
    ends at the first checkpoint past `offset`, the others are a checkpoint span
    each, the last one may be short."""
    first = CHECKPOINT_BYTES - offset % CHECKPOINT_BYTES
    if first >= len(data):
        return [data.count(b"\n")]
    counts = [data.count(b"\n", 0, first)]
    for start in range(first, len(data), CHECKPOINT_BYTES):
        counts.append(data.count(b"\n", start, start + CHECKPOINT_BYTES))
    return counts


def read_records(fd: int, first: int, count: int) -> list[int]:
    """Up to `count` records from record `first` on (fewer at the index's end)."""
    raw = os.pread(fd, count * RECORD.size, first * RECORD.size)
    usable = len(raw) - len(raw) % RECORD.size
    return [value for (value,) in RECORD.iter_unpack(raw[:usable])]


class IndexWriter:
    """Appends the records of a transcript being written.  Never raises: after a
    failure (a full disk) it stops, and the index stays a correct prefix."""

    def __init__(self, fd: int, offset: int, newlines: int) -> None:
        """`fd`: the index, open for appending, holding the records of every
        checkpoint up to `offset`, where the transcript (holding `newlines`
        newlines) ends."""
        self._fd = fd
        self.offset = offset
        self.newlines = newlines

    @classmethod
    def open(cls, directory: Path, transcript: Path, size: int) -> IndexWriter | None:
        """The index of `transcript` (`size` bytes, in `directory`), made consistent
        with it: created for an empty transcript, completed if short, cut if long.
        None for a transcript that has no index (written before there were any) or if
        the disk refuses."""
        path = directory / INDEX_NAME
        flags = os.O_RDWR | os.O_APPEND | getattr(os, "O_CLOEXEC", 0)
        try:
            if size == 0:
                fd = os.open(path, flags | os.O_CREAT | os.O_TRUNC, 0o600)
            else:
                fd = os.open(path, flags)
        except OSError:
            return None
        writer = cls(fd, 0, 0)
        try:
            known = min(os.fstat(fd).st_size // RECORD.size, size // CHECKPOINT_BYTES)
            os.ftruncate(fd, known * RECORD.size)  # a torn record, or past a cut
            writer.offset = known * CHECKPOINT_BYTES
            writer.newlines = read_records(fd, known - 1, 1)[0] if known else 0
            if writer.offset < size:  # what the records do not cover yet
                with open(transcript, "rb") as f:
                    f.seek(writer.offset)
                    while writer.offset < size and not writer.broken:
                        block = f.read(min(_COUNT_BLOCK, size - writer.offset))
                        if not block:
                            raise OSError("the transcript is shorter than its size")
                        writer.add(block, piece_counts(block, writer.offset))
        except (OSError, IndexError):
            writer.close()
        return None if writer.broken else writer

    @property
    def broken(self) -> bool:
        return self._fd < 0

    def add(self, data: bytes, pieces: list[int]) -> None:
        """`data` was appended to the transcript at `offset`; `pieces` are its
        `piece_counts` at that offset."""
        if self._fd < 0:
            return
        records = bytearray()
        newlines, end = self.newlines, self.offset + len(data)
        boundary = (self.offset // CHECKPOINT_BYTES + 1) * CHECKPOINT_BYTES
        for count in pieces:  # only the last piece may stop short of its checkpoint
            newlines += count
            if boundary <= end:
                records += RECORD.pack(newlines)
            boundary += CHECKPOINT_BYTES
        self.offset = end
        self.newlines = newlines
        if records:
            try:
                done = 0
                while done < len(records):
                    done += os.write(self._fd, records[done:])
            except OSError:
                self.close()

    def close(self) -> None:
        if self._fd >= 0:
            with contextlib.suppress(OSError):
                os.close(self._fd)
            self._fd = -1
