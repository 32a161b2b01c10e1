"""A scrollbar that is redrawn when its thumb moves on screen, not on every scroll.

Textual's ScrollBar repaints whenever its position or sizes change.  A view that
follows a session's output scrolls a line or a few at every frame, so its scrollbar
was redrawn with it: every row of it, through the whole styling pipeline, about a
quarter of the time of the frame.  In a long transcript the thumb moves a cell in
hundreds of lines.  This one repaints when what it draws (the thumb's cells and
eighths of a cell) changes; hover, grab, resize and restyle repaint it as Textual's
does.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from math import ceil
from typing import Self

from rich.segment import Segment
from textual.geometry import Region
from textual.reactive import Reactive
from textual.scrollbar import ScrollBar


class ThumbScrollBar(ScrollBar):
    """A ScrollBar whose scrolling repaints only a moved thumb."""

    window_virtual_size: Reactive[int] = Reactive(100, repaint=False)
    window_size: Reactive[int] = Reactive(0, repaint=False)
    position: Reactive[float] = Reactive(0, repaint=False)

    def __init__(
        self, vertical: bool = True, name: str | None = None, *, thickness: int = 1
    ) -> None:
        super().__init__(vertical, name, thickness=thickness)
        self._drawn: list[Segment] | None = None  # the bar as last asked to be drawn
        self._sizing = False
        self._check_due = False

    @contextmanager
    def sizing(self) -> Iterator[None]:
        """While its view sets its sizes: Textual repaints the bar after that, moved
        or not; here the sizes' watchers repaint it if it moved."""
        self._sizing = True
        try:
            yield
        finally:
            self._sizing = False

    def refresh(
        self,
        *regions: Region,
        repaint: bool = True,
        layout: bool = False,
        recompose: bool = False,
    ) -> Self:
        if self._sizing and not (regions or layout or recompose):
            return self
        return super().refresh(*regions, repaint=repaint, layout=layout, recompose=recompose)

    def thumb(self) -> list[Segment]:
        """The bar's cells as Textual's renderer lays them out now (in its default
        colours: the colours do not move with the thumb)."""
        window = self.window_size if self.window_size < self.window_virtual_size else 0
        bar = self.renderer.render_bar(
            size=self.size.height if self.vertical else self.size.width,
            virtual_size=ceil(self.window_virtual_size),
            window_size=ceil(window),
            position=self.position,
            thickness=self.thickness,
            vertical=self.vertical,
        )
        return list(bar.segments)

    def _moved(self) -> None:
        # Checked once the sizes and the position have all been set: a new size
        # alone moves the thumb, and the new position puts it back.
        if not self._check_due:
            self._check_due = True
            self.call_later(self._check)

    def _check(self) -> None:
        self._check_due = False
        drawn = self.thumb()
        if drawn != self._drawn:
            self._drawn = drawn
            super().refresh()

    def watch_window_virtual_size(self) -> None:
        self._moved()

    def watch_window_size(self) -> None:
        self._moved()

    def watch_position(self) -> None:
        self._moved()
