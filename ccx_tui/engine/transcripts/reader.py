"""Random access by line number into a transcript (or any file) of any size.

Memory stays bounded: the index keeps one checkpoint per `CHECKPOINT_BYTES` of file
(its offset is implied; the number of newlines before it is stored), nothing per line.
Reading line N seeks to the checkpoint just before it and scans at most one checkpoint
span, so any line of a multi-GiB file is reached in about constant time.  The tail is
readable before (and while) the rest is indexed.  All methods block on file I/O: the
UI calls them from a worker thread or for small, page-cached reads only.
"""

from __future__ import annotations

import asyncio
import os
import threading
from array import array
from bisect import bisect_left
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

from ccx_tui.engine.transcripts import line_index
from ccx_tui.errors import TranscriptError

CHECKPOINT_BYTES = line_index.CHECKPOINT_BYTES
SCAN_BLOCK = 4 * 1024 * 1024
MAX_LINE_BYTES = 16 * 1024


@dataclass(frozen=True, slots=True)
class Line:
    """One line: where it starts, its full length (without newline), and its bytes.

    `data` holds at most the `max_bytes` asked for; `length > len(data)` means the
    line was cut for display.
    """

    number: int
    offset: int
    length: int
    data: bytes

    @property
    def cut(self) -> bool:
        return self.length > len(self.data)


class TranscriptReader:
    """Line-numbered reads from an append-only file; safe to index from one thread
    while another reads."""

    def __init__(self, path: Path | str, index: Path | None = None) -> None:
        """`index`: the transcript's line index (line_index.py), whose checkpoints are
        adopted instead of counted where they agree with what was counted here."""
        self.path = Path(path)
        self._index_path = index
        self._index_fd = -1
        try:
            self._fd = os.open(self.path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
        except FileNotFoundError:
            raise TranscriptError(f"no such file: {self.path}") from None
        except IsADirectoryError:
            raise TranscriptError(f"is a directory: {self.path}") from None
        except OSError as exc:
            raise TranscriptError(f"cannot open {self.path}: {exc.strerror}") from None
        if os.path.isdir(self.path):
            os.close(self._fd)
            raise TranscriptError(f"is a directory: {self.path}")
        self._lock = threading.Lock()
        self._reset()

    def _reset(self) -> None:
        # _nl_before[k] = number of newlines in [0, k * CHECKPOINT_BYTES)
        self._nl_before = array("q", [0])
        self._size = 0
        self._newlines = 0
        self._last = b"\n"

    # -- indexing ---------------------------------------------------------------------

    def file_size(self) -> int:
        return os.fstat(self._fd).st_size

    def fileno(self) -> int:
        """The descriptor the reader reads (for positional reads of byte ranges)."""
        return self._fd

    @property
    def last_byte(self) -> bytes:
        """The last indexed byte (a newline for an empty file)."""
        with self._lock:
            return self._last

    @property
    def indexed_size(self) -> int:
        """Bytes indexed so far; lines are served from this prefix only."""
        return self._size

    @property
    def fully_indexed(self) -> bool:
        return self._size >= self.file_size()

    def refresh(self, max_bytes: int | None = None) -> bool:
        """Index bytes appended since the last call (at most `max_bytes`).

        Returns True if the indexed size changed.  A file that shrank (truncated) or
        was replaced at its path (rotated) is indexed again from the start.
        """
        restarted = self._follow_rotation()
        size = self.file_size()
        if size < self._size:
            with self._lock:
                self._reset()
            restarted = True
        start = self._size
        end = size if max_bytes is None else min(size, start + max_bytes)
        pos = start
        while pos < end:
            step = min(SCAN_BLOCK, end - pos)
            if self._index_path is not None:
                if pos and pos % CHECKPOINT_BYTES == 0:
                    pos = self._adopt(pos, end)
                    if pos >= end:
                        break
                if pos == 0 or pos % CHECKPOINT_BYTES:
                    # Up to the next checkpoint, where the index may take over (the
                    # first one is counted here, to check the index against).
                    step = min(step, CHECKPOINT_BYTES - pos % CHECKPOINT_BYTES)
            block = os.pread(self._fd, step, pos)
            if not block:
                break
            self._index_block(pos, block)
            pos += len(block)
        return restarted or self._size != start

    def _adopt(self, pos: int, end: int) -> int:
        """Take the line index's checkpoints from `pos` (one) up to `end`; returns
        where that leaves the indexed prefix.  An index that disagrees with what was
        counted here, or with itself, is dropped for good."""
        k = pos // CHECKPOINT_BYTES
        want = end // CHECKPOINT_BYTES - k
        if want <= 0 or k == 0 or len(self._nl_before) != k + 1:
            return pos
        if CHECKPOINT_BYTES != line_index.CHECKPOINT_BYTES:
            self._drop_index()  # another checkpoint size (tests): nothing to adopt
            return pos
        if self._index_fd < 0:
            assert self._index_path is not None
            try:
                self._index_fd = os.open(self._index_path, os.O_RDONLY | os.O_CLOEXEC)
            except OSError:
                return pos  # not there (yet): counted here meanwhile
        try:
            records = line_index.read_records(self._index_fd, k - 1, want + 1)
        except OSError:
            self._drop_index()
            return pos
        prev = self._nl_before[k]
        if not records:
            return pos
        if records.pop(0) != prev:  # the record of `pos` must say what is known here
            self._drop_index()
            return pos
        good: list[int] = []
        for value in records:
            if not 0 <= value - prev <= CHECKPOINT_BYTES:
                self._drop_index()
                break
            good.append(value)
            prev = value
        if not good:
            return pos
        size = (k + len(good)) * CHECKPOINT_BYTES
        last = os.pread(self._fd, 1, size - 1)
        if len(last) != 1:  # cut meanwhile
            return pos
        with self._lock:
            self._nl_before.extend(good)
            self._newlines = good[-1]
            self._last = last
            self._size = size
        return size

    def _drop_index(self) -> None:
        if self._index_fd >= 0:
            os.close(self._index_fd)
        self._index_fd, self._index_path = -1, None

    def _follow_rotation(self) -> bool:
        """If another file now has our path, read that one from now on."""
        try:
            now = os.stat(self.path)
        except OSError:
            return False  # removed or renamed away: keep serving the open file
        held = os.fstat(self._fd)
        if (now.st_dev, now.st_ino) == (held.st_dev, held.st_ino):
            return False
        try:
            fd = os.open(self.path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
        except OSError:
            return False
        with self._lock:
            # dup2 swaps the file under the same descriptor number atomically, so a
            # read on another thread never hits a closed (or reused) descriptor.
            os.dup2(fd, self._fd, inheritable=False)
            self._reset()
        os.close(fd)
        return True

    def _index_block(self, pos: int, block: bytes) -> None:
        checkpoints = array("q")
        newlines = self._newlines
        next_cp = (pos // CHECKPOINT_BYTES + 1) * CHECKPOINT_BYTES
        start = 0
        end = pos + len(block)
        while next_cp <= end:
            cut = next_cp - pos
            newlines += block.count(b"\n", start, cut)
            checkpoints.append(newlines)
            start = cut
            next_cp += CHECKPOINT_BYTES
        newlines += block.count(b"\n", start)
        with self._lock:
            self._nl_before.extend(checkpoints)
            self._newlines = newlines
            self._last = block[-1:]
            self._size = end

    async def follow(self, interval: float = 0.1) -> AsyncIterator[int]:
        """Yield the new line count each time the file grows or starts over (truncated or
        rotated: the index restarts).  Cancel to stop."""
        while True:
            grew = await asyncio.to_thread(self.refresh)
            if grew:
                yield self.line_count
            await asyncio.sleep(interval)

    # -- reading ----------------------------------------------------------------------

    @property
    def line_count(self) -> int:
        """Lines in the indexed prefix; an unterminated last line counts."""
        with self._lock:
            partial = 1 if self._size and self._last != b"\n" else 0
            return self._newlines + partial

    def line_start(self, number: int) -> int:
        """Byte offset where line `number` starts (0-based)."""
        if number <= 0:
            return 0
        with self._lock:
            size = self._size
            if number > self._newlines:
                return size
            # The last checkpoint with fewer than `number` newlines before it.
            k = bisect_left(self._nl_before, number) - 1
            skip = number - self._nl_before[k]
        pos = k * CHECKPOINT_BYTES
        while pos < size:
            block = os.pread(self._fd, min(CHECKPOINT_BYTES, size - pos), pos)
            found = block.count(b"\n")
            if found < skip:
                skip -= found
                pos += len(block)
                continue
            at = -1
            for _ in range(skip):
                at = block.find(b"\n", at + 1)
            return pos + at + 1
        return size  # pragma: no cover - index and file disagree (file shrank)

    def lines(self, start: int, stop: int, max_bytes: int = MAX_LINE_BYTES) -> list[Line]:
        """Lines [start, stop), each cut to `max_bytes` (its `length` stays true)."""
        stop = min(stop, self.line_count)
        if start >= stop:
            return []
        with self._lock:  # one snapshot: indexing may go on in another thread
            size, newlines = self._size, self._newlines
        pos = self.line_start(start)
        out: list[Line] = []
        buf = b""
        buf_pos = pos
        for number in range(start, stop):
            rel = pos - buf_pos
            nl = buf.find(b"\n", rel, rel + max_bytes + 1)
            if nl < 0 and len(buf) - rel <= max_bytes and buf_pos + len(buf) < size:
                buf = os.pread(self._fd, min(max(CHECKPOINT_BYTES, max_bytes + 1), size - pos), pos)
                buf_pos, rel = pos, 0
                nl = buf.find(b"\n", 0, max_bytes + 1)
            if nl >= 0:
                out.append(Line(number, pos, nl - rel, buf[rel:nl]))
                pos = buf_pos + nl + 1
                continue
            # A line longer than max_bytes, or the unterminated last line.
            if number < newlines:
                end = self.line_start(number + 1)
                length = end - pos - 1  # exclude the newline
            else:
                end = size
                length = size - pos
            data = buf[rel : rel + min(length, max_bytes)]
            out.append(Line(number, pos, length, data))
            pos = end
        return out

    def tail(self, count: int, max_bytes: int = MAX_LINE_BYTES) -> list[bytes]:
        """The last `count` lines of the whole file, without consulting the index.

        Reads backwards from the end, at most about `count * max_bytes` bytes, so the
        last screen of a huge, unindexed file is shown at once.  Lines are cut to
        `max_bytes` from their start.  Lines longer than that budget mean fewer than
        `count` lines come back (only lines whose start was read); if the last line
        alone is longer, the result is its end: its last `max_bytes` bytes.
        """
        end = self.file_size()
        if end == 0 or count <= 0:
            return []
        budget = count * (max_bytes + 1) + CHECKPOINT_BYTES
        data = b""
        pos = end
        while pos > 0 and data.count(b"\n", 0, max(len(data) - 1, 0)) < count:
            if end - pos >= budget:
                break
            step = min(CHECKPOINT_BYTES, pos)
            pos -= step
            data = os.pread(self._fd, step, pos) + data
        if data.endswith(b"\n"):
            data = data[:-1]
        parts = data.split(b"\n")
        if pos > 0 and os.pread(self._fd, 1, pos - 1) != b"\n":
            # The first piece is the end of a line whose start was not read.
            if len(parts) == 1:  # all we read is the end of the last line: show that
                return [data[max(len(data) - max_bytes, 0) :]]
            parts = parts[1:]
        return [p[:max_bytes] for p in parts[-count:]]

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
        if self._index_fd >= 0:
            os.close(self._index_fd)
            self._index_fd = -1

    def __enter__(self) -> TranscriptReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
