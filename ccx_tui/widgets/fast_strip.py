"""Textual's Strip, made three times faster to create.

Everything Textual draws passes through Strips: each line of each widget, at every
step of a frame (the widget's line, its styled line, the filtered line, the pieces
the compositor cuts).  Each new Strip builds seven small FIFO caches (crop, divide,
style...), each by a Python constructor: profiled under 100 busy sessions, building
them was a quarter of the app's CPU while it followed a session's output.  Here the
caches are plain dict subclasses, built in C, with Textual's FIFOCache rules for what
the Strip methods use (`get`, and `[key] = value` dropping the oldest entry when
full).  Textual is pinned exactly, so the constructor replaced here cannot change
under us; the tests compare the two.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable
from typing import Any

from rich.segment import Segment
from textual.strip import Strip


class _Fifo4(dict[Hashable, object]):
    """A dict of at most 4 entries, the oldest dropped first (Textual's FIFOCache)."""

    __slots__ = ()
    MAXSIZE = 4

    def __setitem__(self, key: Hashable, value: object) -> None:
        if len(self) >= self.MAXSIZE and key not in self:
            del self[next(iter(self))]
        dict.__setitem__(self, key, value)


class _Fifo16(_Fifo4):
    __slots__ = ()
    MAXSIZE = 16


_new4: Callable[[], Any] = _Fifo4
_new16: Callable[[], Any] = _Fifo16
_textual_init = Strip.__init__


def _init(self: Strip, segments: Iterable[Segment], cell_length: int | None = None) -> None:
    # Textual 8.2.8's Strip.__init__, with the same sizes for each cache.
    self._segments = list(segments)
    self._cell_length = cell_length
    self._divide_cache = _new4()
    self._crop_cache = _new16()
    self._style_cache = _new16()
    self._filter_cache = _new4()
    self._line_length_cache = _new4()
    self._crop_extend_cache = _new4()
    self._offsets_cache = _new4()
    self._render_cache = None
    self._link_ids = None
    self._cell_count = None


def install() -> None:
    """Make every Strip created from now on this way (idempotent)."""
    Strip.__init__ = _init  # type: ignore[method-assign]


def uninstall() -> None:
    """Textual's own constructor again (for tests comparing the two)."""
    Strip.__init__ = _textual_init  # type: ignore[method-assign]
