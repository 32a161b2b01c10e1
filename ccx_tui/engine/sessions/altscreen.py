"""Where a terminal session's program starts and stops drawing a full screen.

Full-screen programs (htop, vim, less) switch the terminal to its alternate screen
(`CSI ? 1049 h`, or the older 1047 and 47) and back when they end; others (top) draw
on the normal screen but turn on application cursor keys (`CSI ? 1 h`, part of
terminfo's `smkx`) for their keyboard and off again (`rmkx`) when done.  The engine
watches its terminal sessions' output for either, so a view knows to show the
program's live screen (from the offset where it began) instead of the transcript's
lines.  Sans-I/O: chunks in, the current state out; a sequence split between two
chunks is still found.
"""

from __future__ import annotations

import re

_SWITCH = re.compile(rb"\x1b\[\?([0-9;]{1,32})([hl])")
_ALT_MODES = frozenset({b"1049", b"1047", b"47"})
_KEYPAD_MODE = b"1"  # DECCKM: application cursor keys
_LONGEST = 3 + 32 + 1  # a sequence this long or longer is no switch of ours
_MARK = b"\x1b[?"


class AltScreenTracker:
    """Follows one terminal's output.  `active_at` is where the program began drawing
    a full screen (the transcript offset just past the switch that began it, the
    earlier of the two kinds if both are on) while it does, else None."""

    def __init__(self, active_at: int | None = None) -> None:
        self.active_at = active_at
        self._alt_at: int | None = active_at
        self._keypad_at: int | None = None
        self._tail = b""  # the end of the last chunk, if it may start a sequence

    def feed(self, offset: int, data: bytes) -> bool:
        """Take the output at transcript `offset`; True if `active_at` changed."""
        if self._tail:
            start = offset - len(self._tail)
            data = self._tail + data
        else:
            start = offset
        before = self.active_at
        if _MARK in data:
            for match in _SWITCH.finditer(data):
                modes = match.group(1).split(b";")
                at = start + match.end() if match.group(2) == b"h" else None
                if not _ALT_MODES.isdisjoint(modes):
                    self._alt_at = at
                if _KEYPAD_MODE in modes:
                    # Set again while on (a redraw): it still began where it began.
                    self._keypad_at = self._keypad_at if at and self._keypad_at else at
            on = [at for at in (self._alt_at, self._keypad_at) if at is not None]
            self.active_at = min(on) if on else None
        self._tail = _unfinished(data)
        return self.active_at != before


def _unfinished(data: bytes) -> bytes:
    """The end of `data` from its last ESC, if that may begin a switch not complete
    yet (the next chunk finishes it)."""
    esc = data.rfind(b"\x1b", max(0, len(data) - _LONGEST))
    if esc < 0:
        return b""
    rest = data[esc:]
    if _SWITCH.match(rest):
        return b""  # complete: already seen
    if not _MARK.startswith(rest[:3]):
        return b""
    if len(rest) > 3 and not re.fullmatch(rb"[0-9;]*", rest[3:]):
        return b""
    return rest
