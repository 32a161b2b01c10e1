"""Which views in the background keep their rendered lines: the few hidden last, per app.

Kept in every tab in the background, a view's rendered lines are objects that each full
pass of the collector walks (some 100,000 with 100 tabs), so a hidden view used to drop
them all; switching back then read, decoded and styled its screen again, the biggest
single part of a switch.  One mostly switches between a few tabs: the `KEEP` views hidden
last keep the lines they show (a screen's worth each), and the others drop theirs.
"""

from __future__ import annotations

from typing import Protocol
from weakref import WeakKeyDictionary

KEEP = 8


class Droppable(Protocol):
    def drop_lines(self) -> None:
        """Let go of the rendered lines kept while hidden."""


class RecentlyHidden:
    """The views hidden last, oldest first (a view shown or gone leaves the list)."""

    def __init__(self, keep: int = KEEP) -> None:
        self._keep = keep
        self._views: dict[Droppable, None] = {}  # insertion order: oldest first

    def hidden(self, view: Droppable) -> None:
        self._views.pop(view, None)
        self._views[view] = None
        while len(self._views) > self._keep:
            oldest = next(iter(self._views))
            del self._views[oldest]
            oldest.drop_lines()

    def left(self, view: Droppable) -> None:
        """`view` is shown again, or unmounted: nothing to drop any more."""
        self._views.pop(view, None)

    def __contains__(self, view: Droppable) -> bool:
        return view in self._views


_BY_APP: WeakKeyDictionary[object, RecentlyHidden] = WeakKeyDictionary()
"""Holds no view of an app that has exited: every view leaves the list when unmounted."""


def recently_hidden(app: object) -> RecentlyHidden:
    """The list of `app`'s views (made on first use)."""
    found = _BY_APP.get(app)
    if found is None:
        found = _BY_APP[app] = RecentlyHidden()
    return found
