"""TabbedContent that ignores stale tab activations and says how many tabs are out of
view on either side."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.content import ContentType
from textual.widgets import Static, TabbedContent, Tabs
from textual.widgets._tabbed_content import ContentTabs


class SessionTabs(TabbedContent):
    """The session tabs.

    Switching tabs quickly (`]` then `[`) queues a `Tabs.TabActivated` for the first
    switch that Textual's TabbedContent handles after the second one, switching back:
    `x` then killed the wrong session.  An activation for a tab that is no longer the
    active one is stale and dropped here.  (A click makes its tab active before the
    message is sent, so clicks still work.)

    More tabs than fit: Textual scrolls the active one into view; "◀ 3" and "4 ▶" at
    the ends of the row say how many are out of view on each side.
    """

    DEFAULT_CSS = """
    SessionTabs { layers: tabs more; }
    SessionTabs > .more {
        layer: more;
        position: absolute;
        width: auto;
        height: 1;
        padding: 0 1;
        background: $panel;
        color: $text;
        text-style: bold;
        display: none;
    }
    """

    def __init__(
        self,
        *titles: ContentType,
        initial: str = "",
        name: str | None = None,
        id: str | None = None,
        classes: str | None = None,
        disabled: bool = False,
    ) -> None:
        super().__init__(
            *titles, initial=initial, name=name, id=id, classes=classes, disabled=disabled
        )
        self._right_offset = -1  # where "N ▶" was put

    def compose(self) -> ComposeResult:
        yield from super().compose()
        yield Static(id="more-left", classes="more")
        yield Static(id="more-right", classes="more")

    def on_mount(self) -> None:
        scroll = self.get_child_by_type(ContentTabs).query_one("#tabs-scroll")
        self.watch(scroll, "scroll_x", self.tabs_changed, init=False)

    def on_resize(self) -> None:
        self.tabs_changed()

    def _on_tabs_tab_activated(self, event: Tabs.TabActivated) -> None:
        tabs = self.get_child_by_type(ContentTabs)
        if event.tabs is tabs and event.tab.id != tabs.active:
            event.stop()
            event.prevent_default()  # TabbedContent's own handler must not run
            return
        self.call_after_refresh(self._show_more)

    def tabs_changed(self) -> None:
        """Tabs were added or removed, or scrolled: show the counts once laid out (the
        app also calls this once a second: a tab just added may not be laid out yet)."""
        self.call_after_refresh(self._show_more)

    def hidden_tabs(self) -> tuple[int, int]:
        """How many tabs are out of view to the left and to the right."""
        tabs = self.get_child_by_type(ContentTabs)
        scroll = tabs.query_one("#tabs-scroll")
        start, width = round(scroll.scroll_x), scroll.size.width
        left = right = 0
        for tab in tabs.query("#tabs-list > Tab"):
            region = tab.virtual_region
            if region.right <= start:
                left += 1
            elif region.x >= start + width:
                right += 1
        return left, right

    def _show_more(self) -> None:
        if not self.is_attached:
            return
        tabs = self.get_child_by_type(ContentTabs)
        # No tab bar shown (zoomed): nothing to count.
        left, right = self.hidden_tabs() if tabs.display and tabs.size.width else (0, 0)
        # Only what changed: an update lays the screen out again (the labels are as
        # wide as their text), and this runs on every switch and every second.
        self._set_more(self.query_one("#more-left", Static), f"◀ {left}" if left else "")
        label = f"{right} ▶" if right else ""
        more_right = self.query_one("#more-right", Static)
        self._set_more(more_right, label)
        if label:
            offset = max(0, self.size.width - len(label) - 2)
            if offset != self._right_offset:
                self._right_offset = offset
                more_right.styles.offset = (offset, 0)

    def _set_more(self, more: Static, label: str) -> None:
        """Show `label` in `more` (hidden if empty), touching it only if it changed."""
        more.display = bool(label)
        old = str(more.content)
        if label and old != label:
            # As wide as before ("◀ 3" to "◀ 4"): a repaint; else a layout.
            more.update(label, layout=len(old) != len(label))
