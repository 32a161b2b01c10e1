"""A tab holding one session: its transcript view and a one-line status bar."""

from __future__ import annotations

from textual import events, on
from textual.app import ComposeResult
from textual.reactive import reactive
from textual.widgets import Static, TabPane

from ccx_tui.engine.session import SessionInfo
from ccx_tui.widgets.status import size, state_label
from ccx_tui.widgets.transcript_panel import TranscriptPanel, search_status
from ccx_tui.widgets.transcript_view import TranscriptView


def pane_id(session_id: str) -> str:
    """DOM ids may not start with a digit; session ids may."""
    return f"s-{session_id}"


class SessionPane(TabPane):
    """One session's tab content; the app sets `info`, the pane renders it."""

    DEFAULT_CSS = """
    SessionPane {
        padding: 0;
        TranscriptPanel { height: 1fr; }
        #status {
            height: 1;
            background: $panel;
            color: $text-muted;
            padding: 0 1;
        }
    }
    """

    info: reactive[SessionInfo | None] = reactive(None)
    """The session shown (its latest snapshot)."""
    follow_note: reactive[str] = reactive("")
    """'↓ N new lines' while not following."""
    search_note: reactive[str] = reactive("")
    """'match i/N' while a search is active."""

    def __init__(self, title: str, info: SessionInfo, *, read_only: bool = False) -> None:
        super().__init__(title, id=pane_id(info.id))
        self.session_id = info.id
        self.read_only = read_only
        self.set_reactive(SessionPane.info, info)

    def compose(self) -> ComposeResult:
        assert self.info is not None
        yield TranscriptPanel(self.info.transcript, title=self.info.spec.title, follow=True)
        yield Static(id="status")

    def on_mount(self) -> None:
        self._render_status()

    def _on_descendant_focus(self, event: events.DescendantFocus) -> None:
        # TabPane would post Focused here, and TabbedContent re-activates the pane that
        # sent it: a late one, after a quick `]` `[`, switched back to the old tab (and
        # `x` then killed the wrong session).  The app decides which tab is active.
        event.prevent_default()  # handlers run along the MRO: skip TabPane's

    def watch_info(self) -> None:
        self._render_status()

    def watch_follow_note(self) -> None:
        self._render_status()

    def watch_search_note(self) -> None:
        self._render_status()

    @on(TranscriptView.SearchChanged)
    def _search_changed(self, event: TranscriptView.SearchChanged) -> None:
        searching = event.transcript_view.searcher is not None
        self.search_note = search_status(event) if searching else ""

    @on(TranscriptView.FollowChanged)
    def _follow_changed(self, event: TranscriptView.FollowChanged) -> None:
        if event.following:
            self.follow_note = ""
        else:
            new = event.new_lines
            self.follow_note = f"↓ {new} new line{'s' * (new != 1)} (f to follow)" if new else ""

    @property
    def view(self) -> TranscriptView:
        return self.query_one(TranscriptView)

    def _render_status(self) -> None:
        if not self.is_mounted or self.info is None:
            return
        info = self.info
        lines = f"{info.lines} line" + ("" if info.lines == 1 else "s")
        parts = [state_label(info), f"run {info.run}", size(info.bytes), lines]
        if info.reason and info.state.final and info.reason != info.state.value:
            parts.append(info.reason)
        if info.write_error:
            parts.append(f"⚠ {info.write_error} ({size(info.bytes_lost)} lost)")
        if self.search_note:
            parts.append(self.search_note)
        if self.follow_note:
            parts.append(self.follow_note)
        self.query_one("#status", Static).update(" · ".join(parts))
