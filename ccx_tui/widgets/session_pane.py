"""A tab holding one session: its transcript view and a one-line status bar."""

from __future__ import annotations

import asyncio
import contextlib
import os

from textual import events, on, work
from textual.app import ComposeResult
from textual.content import Content
from textual.reactive import reactive
from textual.widgets import Static, TabPane

from ccx_tui.engine.api import Engine
from ccx_tui.engine.live_backlog import LiveBacklog, disk_full
from ccx_tui.engine.session import SessionInfo
from ccx_tui.engine.tap import OutputTap
from ccx_tui.errors import CcxError
from ccx_tui.widgets.live_tail import LiveTail, tail_lines
from ccx_tui.widgets.safe import plain
from ccx_tui.widgets.status import size, state_label
from ccx_tui.widgets.transcript_panel import TranscriptPanel, search_status
from ccx_tui.widgets.transcript_view import TranscriptView

LIVE_WINDOW = 4 * 1024 * 1024
"""Output a pane keeps in memory past what its transcript kept (a full disk)."""
DRAIN_DELAY = 0.2
"""Seconds between two updates of the live block: it never redraws per chunk."""


def pane_id(session_id: str) -> str:
    """DOM ids may not start with a digit; session ids may."""
    return f"s-{session_id}"


def live_tap(engine: Engine, info: SessionInfo) -> OutputTap | None:
    """A tap of a session's output for its pane (see `SessionPane`), if it may still
    print anything; without back-pressure, so a view never holds a process back."""
    if info.state.final and info.restart_at is None:
        return None
    with contextlib.suppress(CcxError):
        tap = engine.tap(info.id, window=LIVE_WINDOW, unkept_only=True)
        if tap is not None and not tap.closed:
            return tap
    return None


class SessionPane(TabPane):
    """One session's tab content; the app sets `info`, the pane renders it.

    The output is read from the transcript on disk.  Given a `tap` of the session's
    live output, the pane also keeps, in memory, the output the transcript has not got
    (at most LIVE_WINDOW bytes of the latest): once the disk stops keeping it (full,
    failing), a block under the transcript says how much was not kept and shows the
    latest lines, so the user still sees what the program prints.
    """

    DEFAULT_CSS = """
    SessionPane {
        padding: 0;
        height: 1fr;  /* a bounded height: the live block takes at most half of it */
        TranscriptPanel { height: 1fr; }
        LiveTail { border-top: solid $warning; }
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

    def __init__(
        self,
        title: Content,
        info: SessionInfo,
        *,
        read_only: bool = False,
        tap: OutputTap | None = None,
    ) -> None:
        """`title` is the tab's label: Content, so that no text in it is taken as markup.
        `tap` (see `live_tap`) is the pane's to close.  Raises `TranscriptError` if the
        session's transcript cannot be opened."""
        super().__init__(title, id=pane_id(info.id))
        self.session_id = info.id
        self.read_only = read_only
        self.set_reactive(SessionPane.info, info)
        # Made here, not in compose: a transcript that cannot be opened raises to the
        # caller (a toast), and `view` needs no DOM query.
        self._panel = TranscriptPanel(info.transcript, title=info.spec.title, follow=True)
        self._tap = tap
        self._live = LiveBacklog(LIVE_WINDOW)
        self._live_tail = LiveTail()  # held: updated after every drained batch

    def compose(self) -> ComposeResult:
        yield self._panel
        yield self._live_tail
        yield Static(id="status")

    def on_mount(self) -> None:
        # Not `_render_status`: `is_mounted` turns true only after this handler, and a
        # finished session opened from the history gets no later update to show it.
        self._show_status()
        if self._tap is not None:
            self._drain(self._tap)

    def on_unmount(self) -> None:
        if self._tap is not None:
            self._tap.close()

    def _on_descendant_focus(self, event: events.DescendantFocus) -> None:
        # TabPane would post Focused here, and TabbedContent re-activates the pane that
        # sent it: a late one, after a quick `]` `[`, switched back to the old tab (and
        # `x` then killed the wrong session).  The app decides which tab is active.
        event.prevent_default()  # handlers run along the MRO: skip TabPane's

    def watch_info(self, old: SessionInfo | None, new: SessionInfo | None) -> None:
        if old is not None and new is not None and new.run != old.run:
            self._live = LiveBacklog(LIVE_WINDOW)  # a new run: the last one's is not latest
        self._render_status()
        self._render_live()

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
        return self._panel.view

    @work(group="live", exclusive=True, exit_on_error=False)
    async def _drain(self, tap: OutputTap) -> None:
        """Keep what the transcript has not got of the live output (until the session
        ends), updating the live block a few times a second at most."""
        try:
            while chunks := await tap.read():
                self._live.add(chunks, kept=self._on_disk())
                self._render_live()
                await asyncio.sleep(DRAIN_DELAY)  # coalesce: the tap holds the rest
        finally:
            tap.close()

    def _on_disk(self) -> int:
        """How much of the output the transcript holds (a stat: cheap, in the cache)."""
        assert self.info is not None
        try:
            return os.stat(self.info.transcript).st_size
        except OSError:
            return 0  # gone (deleted data dir): nothing is kept

    def _render_live(self) -> None:
        info = self.info
        if not self.is_mounted or info is None:
            return
        block = self._live_tail
        if info.write_error is None or not self._live:
            block.hide()
            return
        why = "disk full" if disk_full(info.write_error) else info.write_error
        header = f"── {info.bytes_lost:,} bytes not kept on disk ({why}); the latest output: ──"
        block.show(header, tail_lines(self._live.chunks()))

    def _render_status(self) -> None:
        if self.is_mounted:
            self._show_status()

    def _show_status(self) -> None:
        info = self.info
        if info is None:
            return
        lines = f"{info.lines} line" + ("" if info.lines == 1 else "s")
        parts = [state_label(info), f"run {info.run}", size(info.bytes), lines]
        if info.reason and info.state.final and info.reason != info.state.value:
            parts.append(info.reason)
        if info.write_error:
            # The loss first: the error's text can be long.
            parts.append(f"⚠ {size(info.bytes_lost)} not kept on disk: {info.write_error}")
        if self.search_note:
            parts.append(self.search_note)
        if self.follow_note:
            parts.append(self.follow_note)
        # The reason and the write error are a process's, a disk's or a server's words.
        self.query_one("#status", Static).update(plain(" · ".join(parts)))
