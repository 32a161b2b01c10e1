"""Textual's Strip, made several times faster to create, and freed as soon as it is
no longer used.

Everything Textual draws passes through Strips: each line of each widget, at every
step of a frame (the widget's line, its styled line, the filtered line, the pieces
the compositor cuts).  Each new Strip builds seven small FIFO caches (crop, divide,
style...), each by a Python constructor: profiled under 100 busy sessions, building
them was a quarter of the app's CPU while it followed a session's output, and still
a seventh of a tab switch's once they were plain dicts.  Here a strip gets each cache
when it first uses it (most strips use one or none), and the caches are plain dict
subclasses, built in C, with Textual's FIFOCache rules for what the Strip methods use
(`get`, and `[key] = value` dropping the oldest entry when full), that never keep the
strip itself (see `_Cache`).  Textual is pinned exactly, so the constructor replaced
here cannot change under us; the tests compare the two.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable
from typing import Any

from rich.segment import Segment
from textual.strip import Strip


class _Cache(dict[Hashable, object]):
    """One of a strip's caches: at most MAXSIZE entries, the oldest dropped first (as
    Textual's FIFOCache), and never the strip itself.

    Textual's caches keep what a method returned, and some methods return the strip
    itself (`divide` at the strip's own length, `crop_extend` to its own size): the
    strip then holds itself, a reference cycle, and is freed only by the cycle
    collector's full pass.  The compositor divides every line it draws at the widget's
    edges, so most strips were left that way; with 100 busy sessions the full pass
    came about once a minute, walked 200,000 objects and held the app for 0.66 s.
    Not keeping the strip itself costs nothing: those calls return it at once."""

    __slots__ = ()
    MAXSIZE = 4
    ATTR = ""  # the Strip attribute holding this cache

    def __setitem__(self, key: Hashable, value: object) -> None:
        returned = value[0] if type(value) is list and len(value) == 1 else value
        if type(returned) is Strip and _own_cache(returned, self.ATTR) is self:
            return
        if len(self) >= self.MAXSIZE and key not in self:
            del self[next(iter(self))]
        dict.__setitem__(self, key, value)


def _own_cache(strip: Strip, attr: str) -> object:
    """The strip's cache `attr`, or None if it has not made it (not made here)."""
    try:
        return object.__getattribute__(strip, attr)
    except AttributeError:
        return None


_CACHES: dict[str, Callable[[], Any]] = {}
"""Each cache's class, by the Strip attribute holding it."""


def _cache(name: str, attr: str, maxsize: int = 4) -> Callable[[], Any]:
    """The class of the cache a Strip keeps in `attr` (typed as returning Any: Strip
    declares its caches as Textual's FIFOCache)."""
    made = type(name, (_Cache,), {"__slots__": (), "MAXSIZE": maxsize, "ATTR": attr})
    _CACHES[attr] = made
    return made


# Textual 8.2.8's sizes: 4 entries, 16 for crop and style.
_divide = _cache("_Divide", "_divide_cache")
_crop = _cache("_Crop", "_crop_cache", 16)
_style = _cache("_Style", "_style_cache", 16)
_filter = _cache("_Filter", "_filter_cache")
_line_length = _cache("_LineLength", "_line_length_cache")
_crop_extend = _cache("_CropExtend", "_crop_extend_cache")
_offsets = _cache("_Offsets", "_offsets_cache")

_textual_init = Strip.__init__


def _init(self: Strip, segments: Iterable[Segment], cell_length: int | None = None) -> None:
    # Textual 8.2.8's Strip.__init__, less the caches (made when first used, below).
    self._segments = list(segments)
    self._cell_length = cell_length
    self._render_cache = None
    self._link_ids = None
    self._cell_count = None


def _first_use(self: Strip, name: str) -> Any:
    """A cache the strip has not used yet (Strip has slots: Python asks for an unset
    one here), made now; any other missing attribute is an AttributeError."""
    make = _CACHES.get(name)
    if make is None:
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")
    cache = make()
    setattr(self, name, cache)
    return cache


def install() -> None:
    """Make every Strip created from now on this way (idempotent)."""
    Strip.__init__ = _init  # type: ignore[method-assign]
    Strip.__getattr__ = _first_use  # type: ignore[attr-defined]


def uninstall() -> None:
    """Textual's own constructor again (for tests comparing the two)."""
    # (The caches of strips made meanwhile are still made when first used.)
    Strip.__init__ = _textual_init  # type: ignore[method-assign]
