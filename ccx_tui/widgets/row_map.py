"""Where each line of a transcript view sits on screen: soft-wrapped lines take several
rows, and a separator row sits above the first line of each restarted run.

Nothing is kept per line: only the lines that take more than one row (found by
`wrap_scan.WrapScanner`) and the lines that start a run.  Lines after the last one
measured take one row each until they are measured.
"""

from __future__ import annotations

from array import array
from bisect import bisect_left, bisect_right
from dataclasses import dataclass

SEPARATOR = -1
"""`Place.part` of a separator row (the row above `Place.line`)."""


@dataclass(frozen=True, slots=True)
class Place:
    """What a row shows: part `part` (0-based row) of line `line`, or `SEPARATOR`."""

    line: int
    part: int


class RowMap:
    """Rows <-> lines, for `line_count` lines of which some are taller than a row.

    Tall lines are added in ascending order (`add_tall`, as a scan finds them); the
    separators are set as a whole (`set_separators`: a handful of runs).
    """

    def __init__(self) -> None:
        self._tall = array("q")  # line numbers taller than one row, ascending
        self._heights = array("l")  # their heights in rows
        self._extra = array("q")  # extra rows of the tall lines before each: a prefix sum
        self._extra_total = 0
        self._separators: list[int] = []  # lines with a separator row above them
        self._provisional = False  # the last tall line is an unfinished one

    @property
    def tall_lines(self) -> int:
        """Lines known to take more than one row."""
        return len(self._tall)

    @property
    def last_tall(self) -> int:
        """The last tall line added (-1: none)."""
        return self._tall[-1] if self._tall else -1

    def add_tall(self, line: int, height: int) -> None:
        """Line `line` takes `height` rows (after every tall line added so far)."""
        self._drop_provisional()
        self._add(line, height)

    def set_provisional(self, line: int, height: int) -> None:
        """The unfinished last line `line` takes `height` rows for now: replaced by the
        next call, or by `add_tall` once the line is complete."""
        self._drop_provisional()
        if height > 1 and line > self.last_tall:
            self._add(line, height)
            self._provisional = True

    def _drop_provisional(self) -> None:
        if self._provisional:
            self._provisional = False
            self._tall.pop()
            self._extra_total -= self._heights.pop() - 1
            self._extra.pop()

    def _add(self, line: int, height: int) -> None:
        if height <= 1:
            return
        if self._tall and line <= self._tall[-1]:
            raise ValueError(f"tall line {line} added out of order")
        self._tall.append(line)
        self._heights.append(height)
        self._extra.append(self._extra_total)
        self._extra_total += height - 1

    def clear_tall(self) -> None:
        """Forget every tall line (the width changed: they are measured again)."""
        self._tall, self._heights, self._extra = array("q"), array("l"), array("q")
        self._extra_total = 0
        self._provisional = False

    def set_separators(self, lines: list[int]) -> None:
        """Separator rows above these lines (any order; duplicates count once)."""
        self._separators = sorted(set(lines))

    def height(self, line: int) -> int:
        """Rows line `line` takes (without its separator)."""
        i = bisect_left(self._tall, line)
        if i < len(self._tall) and self._tall[i] == line:
            return self._heights[i]
        return 1

    def total(self, line_count: int) -> int:
        """Rows for the first `line_count` lines (separators above a line at
        `line_count` included: a run that has printed nothing yet shows its start)."""
        extra = self._extra_total
        end = bisect_left(self._tall, line_count)
        if end < len(self._tall):
            extra = self._extra[end]
        return line_count + extra + bisect_right(self._separators, line_count)

    def first_row(self, line: int) -> int:
        """The row where line `line` begins (below its separator, if it has one)."""
        return self._wrapped_row(line) + bisect_right(self._separators, line)

    def place(self, row: int) -> Place:
        """What row `row` shows (for a row past the end: a line past the end, part 0)."""
        seps = self._separators
        # The separators at or above `row`: separator k sits at wrapped_row(S[k]) + k.
        k = bisect_right(range(len(seps)), row, key=lambda i: self._wrapped_row(seps[i]) + i)
        if k and self._wrapped_row(seps[k - 1]) + k - 1 == row:
            return Place(seps[k - 1], SEPARATOR)
        return self._wrapped_place(row - k)

    def _wrapped_row(self, line: int) -> int:
        """Where `line` begins counting wrapped rows only."""
        i = bisect_left(self._tall, line)
        return line + (self._extra[i] if i < len(self._tall) else self._extra_total)

    def _wrapped_place(self, row: int) -> Place:
        tall = self._tall
        # Tall line i begins at tall[i] + extra[i]; find the last one at or above `row`.
        i = bisect_right(range(len(tall)), row, key=lambda j: tall[j] + self._extra[j]) - 1
        if i < 0:
            return Place(row, 0)
        start = tall[i] + self._extra[i]
        height = self._heights[i]
        if row < start + height:
            return Place(tall[i], row - start)
        return Place(tall[i] + 1 + (row - start - height), 0)
