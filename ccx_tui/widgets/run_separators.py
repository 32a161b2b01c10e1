"""The separator rows a transcript view draws between a restarted session's runs."""

from __future__ import annotations

import itertools
import os
from pathlib import Path

from rich.segment import Segment
from rich.style import Style
from textual.strip import Strip

from ccx_tui.engine.transcripts.runs import RUNS_NAME, RunEnd, RunStart, read_runs, separator_label
from ccx_tui.textsafe import escape_controls


class RunSeparators:
    """Reads the session's `runs.jsonl` (see runs.py) when it changes and labels the
    first line of every run after the first.

    `poll` may run in a worker thread; `take` and `strip` run on the UI thread.
    """

    def __init__(self, transcript: Path | None) -> None:
        self._path = transcript.with_name(RUNS_NAME) if transcript is not None else None
        self._size = 0  # of the file when last read
        self._read: tuple[list[RunStart], dict[int, RunEnd]] | None = None  # not taken yet
        self.labels: dict[int, str] = {}
        """Separator text by the line it is above."""

    def poll(self) -> None:
        """Read the file if it changed (a few hundred bytes; a crash loop's: a few MiB)."""
        if self._path is None:
            return
        try:
            size = os.stat(self._path).st_size
        except OSError:
            return
        if size != self._size:
            self._size = size
            self._read = read_runs(self._path.parent)

    def take(self) -> bool:
        """Adopt what `poll` read; True if the labels changed."""
        read, self._read = self._read, None
        if read is None:
            return False
        starts, ends = read
        labels = {
            start.line: escape_controls(separator_label(start, ends.get(before.run)))
            for before, start in itertools.pairwise(starts)
        }
        changed = labels != self.labels
        self.labels = labels
        return changed

    def strip(self, line: int, width: int, style: Style) -> Strip:
        """The row above line `line`: "── run 2 started … · run 1 exited 1 ───"."""
        text = f"── {self.labels.get(line, 'new run')} " + "─" * max(width, 0)
        return Strip([Segment(text, style)]).crop_extend(0, width, style)
