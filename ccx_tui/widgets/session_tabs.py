"""TabbedContent that ignores stale tab activations."""

from __future__ import annotations

from textual.widgets import TabbedContent, Tabs
from textual.widgets._tabbed_content import ContentTabs


class SessionTabs(TabbedContent):
    """The session tabs.

    Switching tabs quickly (`]` then `[`) queues a `Tabs.TabActivated` for the first
    switch that Textual's TabbedContent handles after the second one, switching back:
    `x` then killed the wrong session.  An activation for a tab that is no longer the
    active one is stale and dropped here.  (A click makes its tab active before the
    message is sent, so clicks still work.)
    """

    def _on_tabs_tab_activated(self, event: Tabs.TabActivated) -> None:
        tabs = self.get_child_by_type(ContentTabs)
        if event.tabs is tabs and event.tab.id != tabs.active:
            event.stop()
            event.prevent_default()  # TabbedContent's own handler must not run
