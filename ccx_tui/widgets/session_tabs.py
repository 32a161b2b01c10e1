"""The session tabs: one widget draws the row of labels, a ContentSwitcher shows one pane."""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Sequence

from rich.segment import Segment
from rich.style import Style as RichStyle
from textual import events
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.content import Content
from textual.geometry import Size
from textual.message import Message
from textual.strip import Strip
from textual.visual import Visual
from textual.widget import Widget
from textual.widgets import ContentSwitcher

PAD = 1
"""Cells of padding either side of a label."""
UNDERLINE = "━"
MORE_ROOM = 7
"""Cells kept beside the active tab for " ◀ 99 " when tabs are out of view there."""


class TabBar(Widget):
    """The row of tab labels, and under it a line marking the active one.

    Textual's Tabs is a widget per tab: every switch restyled two of them and laid the
    row out again, and every tab added looked all of them up (attaching to 100
    sessions spent seconds there).  This draws the labels as one line, kept until a
    label, the active tab or the width changes.  Tabs that do not fit are counted at
    the ends, "◀ 3" and "4 ▶"; the active tab is always in view.
    """

    DEFAULT_CSS = """
    TabBar {
        height: 2;
        width: 1fr;
        & > .tab-bar--tab { color: $foreground 50%; }
        & > .tab-bar--active { color: $foreground; }
        & > .tab-bar--more { background: $panel; color: $text; text-style: bold; }
        & > .tab-bar--underline {
            color: $block-cursor-background;
            background: $foreground 10%;
        }
        &:ansi {
            & > .tab-bar--tab { text-style: dim; }
            & > .tab-bar--active { text-style: not dim bold; }
            & > .tab-bar--underline {
                color: $block-cursor-background;
                background: $border-blurred;
            }
        }
    }
    """

    COMPONENT_CLASSES = {
        "tab-bar--tab",
        "tab-bar--active",
        "tab-bar--more",
        "tab-bar--underline",
    }

    class Clicked(Message):
        """A tab's label was clicked (or a "◀ N"/"N ▶", for the nearest hidden tab)."""

        def __init__(self, tab_id: str) -> None:
            super().__init__()
            self.tab_id = tab_id

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self._ids: list[str] = []
        self._labels: dict[str, Content] = {}
        self._active = ""
        self._scroll = 0  # the first cell of the row in view
        self._starts: list[int] = [0]  # each tab's first cell, and the row's end
        self._cells: dict[tuple[str, bool], Strip] = {}  # (id, active) -> its cells
        self._lines: tuple[Strip, Strip] | None = None  # as last drawn

    @property
    def active(self) -> str:
        """The active tab's id ("" for none)."""
        return self._active

    @active.setter
    def active(self, tab_id: str) -> None:
        if tab_id and tab_id not in self._labels:
            raise ValueError(f"no tab {tab_id!r}")
        if tab_id != self._active:
            self._active = tab_id
            self._changed(layout=False)

    @property
    def tab_ids(self) -> list[str]:
        """The tabs' ids, in order."""
        return list(self._ids)

    def label(self, tab_id: str) -> Content:
        """The label of tab `tab_id` (KeyError if there is none)."""
        return self._labels[tab_id]

    def add_tab(self, tab_id: str, label: Content) -> None:
        """Add a tab at the end (not active)."""
        if tab_id in self._labels:
            raise ValueError(f"tab {tab_id!r} exists")
        self._ids.append(tab_id)
        self._labels[tab_id] = label
        self._changed()

    def remove_tab(self, tab_id: str) -> str:
        """Remove a tab; returns the new active tab's id: the one after an active tab
        removed, else the one before (as Textual's Tabs does), else ""."""
        if tab_id not in self._labels:
            return self._active
        index = self._ids.index(tab_id)
        self._ids.pop(index)
        del self._labels[tab_id]
        self._cells.pop((tab_id, True), None)
        self._cells.pop((tab_id, False), None)
        if tab_id == self._active:
            neighbours = self._ids[index : index + 1] or self._ids[index - 1 : index]
            self._active = neighbours[0] if neighbours else ""
        self._changed()
        return self._active

    def set_label(self, tab_id: str, label: Content) -> None:
        """Give tab `tab_id` a new label; a label unchanged costs nothing."""
        old = self._labels.get(tab_id)
        if old is None or old == label:
            return
        self._labels[tab_id] = label
        self._cells.pop((tab_id, True), None)
        self._cells.pop((tab_id, False), None)
        self._changed()

    def hidden_tabs(self) -> tuple[int, int]:
        """How many tabs are wholly out of view to the left and to the right."""
        self._measure()
        self._scroll_to_active()
        return self._out_of_view()

    def _out_of_view(self) -> tuple[int, int]:
        """`hidden_tabs` as measured and scrolled already."""
        start, end = self._scroll, self._scroll + self.size.width
        starts = self._starts
        left = right = 0
        for i in range(len(self._ids)):
            if starts[i + 1] <= start:
                left += 1
            elif starts[i] >= end:
                right += 1
        return left, right

    def get_content_height(self, container: Size, viewport: Size, width: int) -> int:
        return 2

    def on_resize(self) -> None:
        self._lines = None

    def notify_style_update(self) -> None:
        super().notify_style_update()
        self._cells.clear()  # drawn in the old colours
        self._lines = None

    def on_click(self, event: events.Click) -> None:
        event.stop()
        if not self._ids:
            return
        left, right = self.hidden_tabs()
        width = self.size.width
        if left and event.x < len(f"◀ {left}") + 2 * PAD:
            self.post_message(self.Clicked(self._ids[left - 1]))
            return
        if right and event.x >= width - len(f"{right} ▶") - 2 * PAD:
            self.post_message(self.Clicked(self._ids[len(self._ids) - right]))
            return
        index = bisect_right(self._starts, event.x + self._scroll) - 1
        if 0 <= index < len(self._ids):
            self.post_message(self.Clicked(self._ids[index]))

    def render_line(self, y: int) -> Strip:
        if self._lines is None:
            self._lines = self._draw()
        return self._lines[y] if y < 2 else Strip.blank(self.size.width)

    def _changed(self, *, layout: bool = True) -> None:
        """Tabs or labels changed (`layout`: their widths may have), or only which one
        is active: draw the two lines again, a repaint of this widget alone."""
        if layout:
            self._starts = []
        self._lines = None
        self.refresh()

    def _measure(self) -> None:
        if len(self._starts) == len(self._ids) + 1:
            return
        starts, cell = [], 0
        for tab_id in self._ids:
            starts.append(cell)
            cell += self._labels[tab_id].cell_length + 2 * PAD
        starts.append(cell)
        self._starts = starts

    def _scroll_to_active(self) -> None:
        """Move the row, as little as it takes, to show the active tab whole."""
        width = self.size.width
        if self._active not in self._labels or width <= 0:
            self._scroll = max(0, min(self._scroll, self._starts[-1] - width))
            return
        index = self._ids.index(self._active)
        # Room for "◀ N" / "N ▶" beside it, unless it is the first / last tab.
        before = MORE_ROOM if index > 0 else 0
        after = MORE_ROOM if index + 1 < len(self._ids) else 0
        first, end = self._starts[index] - before, self._starts[index + 1] + after
        if first < self._scroll:
            self._scroll = first
        elif end > self._scroll + width:
            self._scroll = min(first, end - width)
        self._scroll = max(0, min(self._scroll, max(0, self._starts[-1] - width)))

    def _tab_cells(self, tab_id: str, active: bool) -> Strip:
        """A tab's label with its padding, drawn once in each state."""
        key = (tab_id, active)
        strip = self._cells.get(key)
        if strip is None:
            label = self._labels[tab_id]
            style = self.get_visual_style("tab-bar--active" if active else "tab-bar--tab")
            width = label.cell_length + 2 * PAD
            padded = Content(" " * PAD) + label + Content(" " * PAD)
            lines = Visual.to_strips(self, padded, width, 1, style, apply_selection=False)
            strip = lines[0] if lines else Strip.blank(width, style.rich_style)
            self._cells[key] = strip
        return strip

    def _draw(self) -> tuple[Strip, Strip]:
        self._measure()
        self._scroll_to_active()
        width = self.size.width
        base = self.rich_style
        if width <= 0:
            return Strip.blank(0), Strip.blank(0)
        start, end = self._scroll, self._scroll + width
        first = max(0, bisect_right(self._starts, start) - 1)
        last = bisect_right(self._starts, end)  # tabs [first, last) touch the view
        pieces = [
            self._tab_cells(tab_id, tab_id == self._active)
            for tab_id in self._ids[first : min(last, len(self._ids))]
        ]
        offset = self._starts[first] if pieces else start
        row = Strip.join(pieces).crop(start - offset, end - offset)
        row = row.extend_cell_length(width, base)
        left, right = self._out_of_view()
        more = self.get_component_rich_style("tab-bar--more")
        if left:
            label = Strip([Segment(f"{' ' * PAD}◀ {left}{' ' * PAD}", more)])
            row = Strip.join([label, row.crop(label.cell_length, width)])
        if right:
            label = Strip([Segment(f"{' ' * PAD}{right} ▶{' ' * PAD}", more)])
            at = max(0, width - label.cell_length)
            row = Strip.join([row.crop(0, at), label]).crop(0, width)
        return row, self._underline(width, base)

    def _underline(self, width: int, base: RichStyle) -> Strip:
        bar = self.get_component_rich_style("tab-bar--underline")
        dim = base + RichStyle(color=bar.bgcolor)
        bright = base + RichStyle(color=bar.color)
        if self._active not in self._labels:
            return Strip([Segment(UNDERLINE * width, dim)])
        index = self._ids.index(self._active)
        a = max(0, self._starts[index] - self._scroll)
        b = min(width, self._starts[index + 1] - self._scroll)
        segments = [
            Segment(UNDERLINE * a, dim),
            Segment(UNDERLINE * max(0, b - a), bright),
            Segment(UNDERLINE * max(0, width - b), dim),
        ]
        return Strip([s for s in segments if s.text], width)


class SessionTabs(Vertical):
    """The tab bar over the panes, one shown at a time.

    The app decides which tab is active (`active`); a click on a label only asks
    (`TabBar.Clicked`), so a late event can never switch back to a tab just left.
    """

    DEFAULT_CSS = """
    SessionTabs {
        height: 1fr;
        & > ContentSwitcher { height: 1fr; }
    }
    """

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.bar = TabBar()
        self._switcher = ContentSwitcher()

    def compose(self) -> ComposeResult:
        yield self.bar
        yield self._switcher

    @property
    def active(self) -> str:
        """The active pane's id ("" for none)."""
        return self.bar.active

    @active.setter
    def active(self, pane_id: str) -> None:
        self.bar.active = pane_id  # ValueError for a pane it has not got
        self._switcher.current = pane_id or None

    def label(self, pane_id: str) -> Content:
        """The label of `pane_id`'s tab."""
        return self.bar.label(pane_id)

    def set_label(self, pane_id: str, label: Content) -> None:
        self.bar.set_label(pane_id, label)

    def hidden_tabs(self) -> tuple[int, int]:
        """How many tabs are out of view to the left and to the right."""
        return self.bar.hidden_tabs()

    async def add_panes(self, panes: Sequence[tuple[Widget, Content]]) -> None:
        """Add each pane (with an id) and its tab's label after the others, mounted at
        once; with no tab shown yet, the first one is."""
        for pane, label in panes:
            assert pane.id is not None
            pane.display = False
            self.bar.add_tab(pane.id, label)
        await self._switcher.mount_all([pane for pane, _ in panes])
        if panes and not self.active:
            self.active = panes[0][0].id or ""

    async def remove_pane(self, pane_id: str) -> None:
        """Remove a pane; if it was shown, its right neighbour (else the left) is."""
        was_active = pane_id == self.active
        new = self.bar.remove_tab(pane_id)
        if was_active:
            self._switcher.current = new or None
        for child in self._switcher.children:
            if child.id == pane_id:
                await child.remove()
                break
