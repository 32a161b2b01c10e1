"""Finds the lines of a file that wrap onto more than one row at a given width.

A line's cells never outnumber its bytes except through tabs (UTF-8 takes at least as
many bytes as cells; control characters and invalid bytes are shown one cell each), so
only lines longer than the width, or with a tab, are measured.  Long lines are found
without a Python loop per line: the block is mapped to `x` and newlines, and a run of
width+1 `x` is searched for (about 2.5 s per GiB of short lines, in a worker thread).
"""

from __future__ import annotations

import os
from collections.abc import Callable

from ccx_tui.engine.transcripts.reader import MAX_LINE_BYTES

BLOCK = 4 * 1024 * 1024
"""Bytes read per step (short: each step holds the GIL for a few milliseconds)."""
TAB_SIZE = 8
_MASK = bytes(b if b == 0x0A else 0x78 for b in range(256))  # newline stays, all else `x`

Measure = Callable[[bytes, int], int]
"""A line's cells as shown: (its first bytes, how many bytes were left out)."""


def rows_for(cells: int, width: int) -> int:
    """Rows a line of `cells` cells takes at `width` columns (at least one)."""
    return max(1, -(-cells // max(width, 1)))


class WrapScanner:
    """Walks a file's complete lines from the start, reporting the tall ones.

    One thread at a time may call `scan`; `pos` is always just after a newline (or 0)
    and `line` is the number of that line.
    """

    def __init__(self, width: int, measure: Measure) -> None:
        self.width = max(width, 1)
        self.measure = measure
        self.pos = 0
        self.line = 0
        self._needle = b"x" * (self.width + 1)

    def scan(self, fd: int, end: int, max_bytes: int = BLOCK) -> list[tuple[int, int]]:
        """Scan complete lines in [pos, end), at most about `max_bytes` of them (a
        single longer line is read to its end); returns (line, rows) of the lines
        taking more than one row, in order.  Stops before an unfinished last line."""
        if self.pos >= end:
            return []
        data = os.pread(fd, min(max_bytes, end - self.pos), self.pos)
        last = data.rfind(b"\n")
        if last < 0:
            return self._one_long_line(fd, end)
        data = data[: last + 1]
        found = self._tall_in(data)
        self.line += data.count(b"\n")
        self.pos += len(data)
        return found

    def _tall_in(self, data: bytes) -> list[tuple[int, int]]:
        """The tall lines of `data`, a run of complete lines starting at `pos`."""
        starts: set[int] = set()
        masked = data.translate(_MASK)
        i = masked.find(self._needle)
        while i >= 0:
            start = data.rfind(b"\n", 0, i) + 1
            starts.add(start)
            nl = data.find(b"\n", i)
            i = masked.find(self._needle, nl + 1)
        t = data.find(b"\t")
        while t >= 0:
            start = data.rfind(b"\n", 0, t) + 1
            nl = data.find(b"\n", t)
            if (
                start not in starts
                and nl - start + (TAB_SIZE - 1) * data.count(b"\t", start, nl) > self.width
            ):
                starts.add(start)
            t = data.find(b"\t", nl + 1)
        found: list[tuple[int, int]] = []
        line, counted = self.line, 0
        for start in sorted(starts):
            line += data.count(b"\n", counted, start)
            counted = start
            nl = data.find(b"\n", start)
            shown = data[start : min(nl, start + MAX_LINE_BYTES)]
            rows = rows_for(self.measure(shown, nl - start - len(shown)), self.width)
            if rows > 1:
                found.append((line, rows))
        return found

    def _one_long_line(self, fd: int, end: int) -> list[tuple[int, int]]:
        """A line longer than a block: find its end, measure its start."""
        nl_at = -1
        pos = self.pos
        while pos < end:
            chunk = os.pread(fd, min(BLOCK, end - pos), pos)
            if not chunk:
                break
            k = chunk.find(b"\n")
            if k >= 0:
                nl_at = pos + k
                break
            pos += len(chunk)
        if nl_at < 0:
            return []  # unfinished: the view measures the last line itself
        shown = os.pread(fd, min(MAX_LINE_BYTES, nl_at - self.pos), self.pos)
        rows = rows_for(self.measure(shown, nl_at - self.pos - len(shown)), self.width)
        line = self.line
        self.line += 1
        self.pos = nl_at + 1
        return [(line, rows)] if rows > 1 else []
