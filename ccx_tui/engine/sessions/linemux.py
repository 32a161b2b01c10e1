"""Merge a process's stdout and stderr at line boundaries (sans-I/O).

Output from the two pipes is written to one transcript in arrival order, but a line
is never split by the other stream: a stream's unfinished line is held back (up to
`hold_limit` bytes) until its terminator arrives.  Both ``\\n`` and ``\\r`` end a
line here, because a terminal also lets the other stream write after a ``\\r``.
A line longer than `hold_limit` is written as it comes (memory stays bounded); while
it is open the other stream is spooled, in memory and then in a temporary file, and
flushed when the long line ends (or, if the disk refuses the spool, at once: then
they land inside the long line).  Nothing is ever dropped or reordered within a
stream.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Iterator
from typing import IO

HOLD_LIMIT = 64 * 1024
SPOOL_MEMORY = 1024 * 1024
_READ = 1024 * 1024

Emit = Callable[[int, bytes], None]


def _last_terminator(data: bytes | bytearray) -> int:
    # A \r only counts after the last \n: searching the whole chunk for one that is
    # rarely there cost a second full scan of every chunk.
    newline = data.rfind(b"\n")
    return max(newline, data.rfind(b"\r", newline + 1))


def _write_at(file: IO[bytes], data: bytes | bytearray, pos: int) -> None:
    view = memoryview(data)
    while view:
        written = os.pwrite(file.fileno(), view, pos)
        view, pos = view[written:], pos + written


class Spool:
    """A FIFO of bytes: in memory up to a limit, then in an anonymous temp file."""

    def __init__(self, spool_dir: str | None, memory_limit: int = SPOOL_MEMORY) -> None:
        self._dir = spool_dir
        self._limit = memory_limit
        self._mem = bytearray()
        self._file: IO[bytes] | None = None
        self._read_pos = 0
        self._write_pos = 0

    def __len__(self) -> int:
        return len(self._mem) + (self._write_pos - self._read_pos)

    def append(self, data: bytes) -> None:
        """Add `data` at the end; on a disk error raise OSError, with nothing added."""
        if self._file is None and len(self._mem) + len(data) <= self._limit:
            self._mem += data
            return
        if self._file is None:
            file = tempfile.TemporaryFile(dir=self._dir)  # noqa: SIM115 - closed in close()
            try:
                _write_at(file, self._mem, 0)
            except OSError:
                file.close()
                raise
            self._file, self._write_pos, self._mem = file, len(self._mem), bytearray()
        # Unbuffered writes at explicit offsets: an error shows up here, not in a later
        # flush, and leaves the spool as it was (the next write overwrites any part).
        _write_at(self._file, data, self._write_pos)
        self._write_pos += len(data)

    def chunks(self) -> Iterator[bytes]:
        """Yield and remove the spooled bytes in order, at most 1 MiB at a time."""
        if self._file is None:
            data, self._mem = bytes(self._mem), bytearray()
            if data:
                yield data
            return
        while self._read_pos < self._write_pos:
            size = min(_READ, self._write_pos - self._read_pos)
            data = os.pread(self._file.fileno(), size, self._read_pos)
            self._read_pos += len(data)
            yield data
        self.close()

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
        self._read_pos = self._write_pos = 0
        self._mem = bytearray()


class LineMux:
    """Interleaves N streams line by line, calling `emit(stream, data)` in order."""

    def __init__(
        self,
        emit: Emit,
        *,
        streams: int = 2,
        hold_limit: int = HOLD_LIMIT,
        spool_dir: str | None = None,
    ) -> None:
        self._emit = emit
        self._hold_limit = hold_limit
        self._pending = [bytearray() for _ in range(streams)]
        self._spools = [Spool(spool_dir) for _ in range(streams)]
        self._eof = [False] * streams
        self._owner: int | None = None
        self._draining = False

    @property
    def held_bytes(self) -> int:
        """Bytes received but not yet emitted (held partial lines and spools)."""
        return sum(len(p) for p in self._pending) + sum(len(s) for s in self._spools)

    def feed(self, stream: int, data: bytes) -> None:
        """Take bytes read from `stream`."""
        if not data:
            return
        if self._owner is not None and self._owner != stream:
            try:
                self._spools[stream].append(data)
                return
            except OSError:
                # No room to spool (disk full): rather than lose these bytes, stop
                # holding the long line back; they go out into its middle.
                self._owner = None
                self._drain()
        self._process(stream, data)

    def eof(self, stream: int) -> None:
        """`stream` is closed: its held partial line is final."""
        self._eof[stream] = True
        if self._owner is None or self._owner == stream:
            self._flush_pending(stream)
            self._owner = None
            self._drain()

    def flush(self) -> None:
        """Emit everything still held, in order (used when reading stops for good)."""
        if self._owner is not None:
            self._flush_pending(self._owner)
            self._owner = None
        for stream in range(len(self._pending)):
            self._eof[stream] = True
        self._drain()
        for stream in range(len(self._pending)):
            self._flush_pending(stream)

    @property
    def has_partial(self) -> bool:
        """A partial line is held back in memory (see `flush_partial`)."""
        return any(self._pending)

    def flush_partial(self) -> None:
        """Write held partial lines now, without waiting for their terminator.

        The engine calls this once a partial line has waited ~100 ms, so prompts and
        unfinished progress show up; the other stream may then continue that line,
        as it would in a terminal.
        """
        if self._owner is None:
            for stream in range(len(self._pending)):
                self._flush_pending(stream)

    def close(self) -> None:
        for spool in self._spools:
            spool.close()

    def _flush_pending(self, stream: int) -> None:
        pending = self._pending[stream]
        if pending:
            self._emit(stream, bytes(pending))
            pending.clear()

    def _process(self, stream: int, data: bytes) -> None:
        cut = _last_terminator(data)
        if self._owner == stream:
            if cut < 0:
                self._emit(stream, data)
                return
            self._emit(stream, data[: cut + 1])
            self._owner = None
            # Bytes spooled by the other streams arrived before the rest of `data`.
            self._drain()
            self.feed(stream, data[cut + 1 :])
            return
        pending = self._pending[stream]
        if cut >= 0:
            if pending:
                # The held line's start and the lines this chunk ends go out as one
                # write, copied once (growing `pending` and copying it out cost three).
                done = b"".join((pending, memoryview(data)[: cut + 1]))
                pending.clear()
            else:
                done = data[: cut + 1]  # the chunk itself when it ends a line: no copy
            self._emit(stream, done)
            if cut + 1 == len(data):
                return
            pending += memoryview(data)[cut + 1 :]
        else:
            pending += data
        if len(pending) > self._hold_limit:
            self._emit(stream, bytes(pending))
            pending.clear()
            self._owner = stream

    def _drain(self) -> None:
        if self._draining:
            return
        self._draining = True
        try:
            progress = True
            while progress and self._owner is None:
                progress = False
                for stream, spool in enumerate(self._spools):
                    if self._owner is not None and self._owner != stream:
                        break
                    if len(spool):
                        progress = True
                        # Only `stream` itself can take ownership while its spool drains.
                        for chunk in spool.chunks():
                            self._process(stream, chunk)
                    if self._eof[stream] and self._owner in (None, stream) and not len(spool):
                        self._flush_pending(stream)
                        if self._owner == stream:
                            self._owner = None
        finally:
            self._draining = False
