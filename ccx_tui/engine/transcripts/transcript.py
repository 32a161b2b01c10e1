"""Append-only on-disk transcript of one session, with a stream/arrival-time sidecar.

`transcript.log` holds exactly the bytes the process printed (stdout and stderr merged
at line boundaries by `LineMux`).  `chunks.bin` beside it holds fixed-size records
``(offset, time, stream)``: from `offset` on, bytes came from `stream` and arrived at
`time` (one record per stream switch or per 50 ms, so it stays small).  Readers use it
to colour stderr and to show arrival times.
"""

from __future__ import annotations

import errno
import os
import struct
import time
from dataclasses import dataclass
from pathlib import Path

from ccx_tui.engine.transcripts.line_index import IndexWriter, piece_counts

STDOUT = 0
STDERR = 1
META = 2  # bytes ccx-tui added itself (a newline between runs)

RECORD = struct.Struct("<QdB")
RECORD_SECONDS = 0.05
TRANSCRIPT_NAME = "transcript.log"
SIDECAR_NAME = "chunks.bin"
_COUNT_BLOCK = 4 * 1024 * 1024
WRITE_MAX = 512 * 1024
"""Most bytes one write() takes.  On the benchmark machine (Linux 6.18, ext4) a 1 MiB
write took four times the kernel time of two 512 KiB ones (0.9 s against 0.2 s per
GiB; large page-cache folios, it seems), and 512 KiB writes cost no more than smaller
ones."""


@dataclass(frozen=True, slots=True)
class Segment:
    """From `offset` on (until the next segment), bytes came from `stream` at `time`."""

    offset: int
    time: float
    stream: int


class TranscriptWriter:
    """Appends bytes to a transcript; never raises on a failing disk.

    After the first write error (ENOSPC, EIO, EFBIG...) the writer keeps the transcript
    as an exact prefix of the output, stops writing, and counts every further byte in
    `bytes_lost`; `error` says what happened.  The caller keeps draining the process so
    it is never blocked.
    """

    def __init__(self, directory: Path, newlines: int | None = None) -> None:
        """Open the transcript in `directory`, appending if it exists (a new run).

        `offset`, `newlines` and `last_byte` describe the whole file.  Pass `newlines`
        if the caller knows how many the existing file holds; else they are counted.
        """
        self.path = directory / TRANSCRIPT_NAME
        self.sidecar_path = directory / SIDECAR_NAME
        flags = os.O_WRONLY | os.O_CREAT | os.O_APPEND | getattr(os, "O_CLOEXEC", 0)
        self._fd = os.open(self.path, flags, 0o600)
        self._side_fd = os.open(self.sidecar_path, flags, 0o600)
        torn = os.fstat(self._side_fd).st_size % RECORD.size
        if torn:  # a record cut short by an earlier failure: later ones must stay aligned
            os.ftruncate(self._side_fd, os.fstat(self._side_fd).st_size - torn)
        self.offset = os.fstat(self._fd).st_size
        self._index = IndexWriter.open(directory, self.path, self.offset)
        if self._index is not None:  # exact, and it counts only past the last checkpoint
            self.newlines = self._index.newlines
        else:
            self.newlines = self._count_newlines() if newlines is None else newlines
        self.bytes_lost = 0
        self.error: str | None = None
        self.last_byte: bytes = b"\n" if self.offset == 0 else self._read_last_byte()
        self._last_stream = -1
        self._last_record = 0.0

    def _count_newlines(self) -> int:
        count, pos = 0, 0
        if self.offset:
            with open(self.path, "rb") as f:
                while pos < self.offset:
                    block = f.read(min(_COUNT_BLOCK, self.offset - pos))
                    if not block:
                        break
                    count += block.count(b"\n")
                    pos += len(block)
        return count

    def _read_last_byte(self) -> bytes:
        with open(self.path, "rb") as f:
            f.seek(-1, os.SEEK_END)
            return f.read(1)

    def write(self, stream: int, data: bytes, counted: tuple[int, list[int]] | None = None) -> None:
        """Append `data` from `stream`; on a disk error record it instead of raising.

        `counted`, if given, is ``(offset, piece_counts(data, offset))`` for the offset
        the caller expects `data` at: its newlines, counted off the writer's thread
        (see line_index.py); counted here if it is not for this offset.
        """
        if not data:
            return
        if self.error is not None:
            self.bytes_lost += len(data)
            return
        now = time.time()
        if stream != self._last_stream or now - self._last_record >= RECORD_SECONDS:
            record = RECORD.pack(self.offset, now, stream)
            try:
                done = 0
                while done < len(record):  # a short write is retried: it then fails
                    done += os.write(self._side_fd, record[done:])
            except OSError as exc:
                self._fail(exc, len(data))
                return
            self._last_stream = stream
            self._last_record = now
        view = memoryview(data)
        written = 0
        try:
            while written < len(data):
                written += os.write(self._fd, view[written : written + WRITE_MAX])
        except OSError as exc:
            self._fail(exc, len(data) - written)
        if written:
            start = self.offset
            self.offset += written
            kept = data if written == len(data) else data[:written]
            if counted is not None and counted[0] == start and written == len(data):
                counts = counted[1]
            else:  # counted for another offset, or cut short by the disk
                counts = piece_counts(kept, start)
            if self._index is not None:
                self._index.add(kept, counts)
            self.newlines += sum(counts)
            self.last_byte = data[written - 1 : written]

    def _fail(self, exc: OSError, lost: int) -> None:
        name = errno.errorcode.get(exc.errno or 0, "error")
        self.error = f"transcript write failed ({name}): {exc.strerror or exc}"
        self.bytes_lost += lost

    def close(self) -> None:
        if self._index is not None:
            self._index.close()
        for fd in (self._fd, self._side_fd):
            try:
                os.close(fd)
            except OSError:
                pass
        self._fd = self._side_fd = -1


def _records_up_to(fd: int, offset: int) -> int:
    """How many of a sidecar's records start at or before transcript byte `offset`
    (records are fixed-size and sorted by offset: a binary search, one read a step)."""
    lo, hi = 0, os.fstat(fd).st_size // RECORD.size
    while lo < hi:
        mid = (lo + hi) // 2
        if RECORD.unpack(os.pread(fd, RECORD.size, mid * RECORD.size))[0] <= offset:
            lo = mid + 1
        else:
            hi = mid
    return lo


def trim_sidecar(sidecar: Path, size: int) -> None:
    """Drop the records of bytes at or past `size` (the transcript was cut there).
    Raises OSError (but not for a missing sidecar)."""
    try:
        fd = os.open(sidecar, os.O_RDWR | os.O_CLOEXEC)
    except FileNotFoundError:
        return
    try:
        os.ftruncate(fd, _records_up_to(fd, size - 1) * RECORD.size)
    finally:
        os.close(fd)


def read_segments(sidecar: Path, start: int = 0, stop: int | None = None) -> list[Segment]:
    """Segments overlapping byte range [start, stop) of the transcript.

    Records are fixed-size and sorted by offset, so this seeks by binary search
    instead of reading the whole sidecar.  A missing sidecar means all stdout.
    """
    try:
        f = open(sidecar, "rb")  # noqa: SIM115 - closed below
    except FileNotFoundError:
        return [Segment(0, 0.0, STDOUT)]
    with f:
        first = max(_records_up_to(f.fileno(), start) - 1, 0)
        f.seek(first * RECORD.size)
        out: list[Segment] = []
        while True:
            raw = f.read(RECORD.size * 256)
            if not raw:
                break
            for off, when, stream in RECORD.iter_unpack(raw[: len(raw) - len(raw) % RECORD.size]):
                if stop is not None and off >= stop and out:
                    return out
                out.append(Segment(off, when, stream))
            if len(raw) < RECORD.size * 256:
                break
        return out or [Segment(0, 0.0, STDOUT)]
