"""A tab holding one session: its transcript view and a one-line status bar."""

from __future__ import annotations

import asyncio
import contextlib
import os

from textual import events, on, work
from textual.app import ComposeResult
from textual.message import Message
from textual.reactive import reactive
from textual.widget import Widget
from textual.widgets import Static

from ccx_tui.engine.api import Engine
from ccx_tui.engine.sessions.live_backlog import LiveBacklog, disk_full
from ccx_tui.engine.sessions.session import SessionInfo
from ccx_tui.engine.sessions.tap import OutputTap
from ccx_tui.errors import CcxError
from ccx_tui.widgets.live_tail import LiveTail, tail_lines
from ccx_tui.widgets.safe import plain
from ccx_tui.widgets.status import size, state_label
from ccx_tui.widgets.terminal_screen import TerminalScreen
from ccx_tui.widgets.transcript_panel import TranscriptPanel, search_status
from ccx_tui.widgets.transcript_view import TranscriptView

LIVE_WINDOW = 4 * 1024 * 1024
"""Output a pane keeps in memory past what its transcript kept (a full disk)."""
DRAIN_DELAY = 0.2
"""Seconds between two updates of the live block: it never redraws per chunk."""
SCREEN_REPLAY = 1024 * 1024
"""A full-screen program's output replayed at most when its screen is first shown
(it redraws its screen often; older output only costs time)."""
SCREEN_FEED = 256 * 1024
"""Bytes fed to the screen per step: a flood is fed over several frames."""
DECCKM = 1 << 5
"""Application cursor keys, as pyte keeps it in `Screen.mode` (private modes << 5)."""


def pane_id(session_id: str) -> str:
    """DOM ids may not start with a digit; session ids may."""
    return f"s-{session_id}"


def live_tap(engine: Engine, info: SessionInfo) -> OutputTap | None:
    """A tap of a session's output for its pane (see `SessionPane`), if it may still
    print anything or its disk did not keep the end (the engine holds that tail);
    without back-pressure, so a view never holds a process back."""
    if info.state.final and info.restart_at is None and info.write_error is None:
        return None
    with contextlib.suppress(CcxError):
        tap = engine.tap(info.id, window=LIVE_WINDOW, unkept_only=True)
        if tap is not None and not tap.closed:
            return tap
    return None


class SessionPane(Widget):
    """One session's tab content; the app sets `info`, the pane renders it.

    The output is read from the transcript on disk.  Given a `tap` of the session's
    live output, the pane also keeps, in memory, the output the transcript has not got
    (at most LIVE_WINDOW bytes of the latest): once the disk stops keeping it (full,
    failing), a block under the transcript says how much was not kept and shows the
    latest lines, so the user still sees what the program prints.
    """

    DEFAULT_CSS = """
    SessionPane {
        layout: vertical;
        padding: 0;
        height: 1fr;  /* a bounded height: the live block takes at most half of it */
        TranscriptPanel { height: 1fr; }
        LiveTail { border-top: solid $warning; }
        TerminalScreen { display: none; }
        &.-full-screen TerminalScreen { display: block; }
        &.-full-screen TranscriptPanel { display: none; }
        #status {
            height: 1;
            background: $panel;
            color: $text-muted;
            padding: 0 1;
        }
        &.-input #status {
            background: $warning;
            color: $text;
            text-style: bold;
        }
    }
    """

    info: reactive[SessionInfo | None] = reactive(None)
    """The session shown (its latest snapshot)."""
    follow_note: reactive[str] = reactive("")
    """'↓ N new lines' while not following."""
    search_note: reactive[str] = reactive("")
    """'match i/N' while a search is active."""
    typing: reactive[bool] = reactive(False)
    """Input mode: the user's keys go to this session's program."""

    class TerminalSized(Message):
        """The view of a session's output has a new size: its terminal follows."""

        def __init__(self, pane: SessionPane, cols: int, rows: int) -> None:
            super().__init__()
            self.pane = pane
            self.session_id = pane.session_id
            self.cols = cols
            self.rows = rows

        @property
        def control(self) -> SessionPane:
            return self.pane

        def can_replace(self, message: Message) -> bool:
            return isinstance(message, SessionPane.TerminalSized) and message.pane is self.pane

    class TerminalReply(Message):
        """A full-screen program's query answered by its screen: type it in."""

        def __init__(self, pane: SessionPane, data: str) -> None:
            super().__init__()
            self.pane = pane
            self.session_id = pane.session_id
            self.data = data

        @property
        def control(self) -> SessionPane:
            return self.pane

    def __init__(
        self,
        info: SessionInfo,
        *,
        read_only: bool = False,
        tap: OutputTap | None = None,
        wrap: bool = False,
    ) -> None:
        """`tap` (see `live_tap`) is the pane's to close; `wrap` starts its output
        soft-wrapped.  Raises `TranscriptError` if the
        session's transcript cannot be opened."""
        super().__init__(id=pane_id(info.id))
        self.session_id = info.id
        self.read_only = read_only
        self.set_reactive(SessionPane.info, info)
        # Made here, not in compose: a transcript that cannot be opened raises to the
        # caller (a toast), and `view` needs no DOM query.
        self._panel = TranscriptPanel(
            info.transcript, title=info.spec.title, follow=True, wrap=wrap
        )
        self._tap = tap
        self._live = LiveBacklog(LIVE_WINDOW)
        # Held: updated after every drained batch; mounted once it has something to
        # show (a full disk), as most tabs never do.
        self._live_tail = LiveTail()
        self._live_mounting = False
        self._live_ready = False  # mounted with its children: `show` can fill it
        self._status = Static(id="status")  # held: updated every second, never queried
        self._status_text = ""
        # A full-screen program's live screen: built when one first runs here.
        self._screen: TerminalScreen | None = None
        self._screen_at: int | None = None  # where its program entered the screen
        self._screen_pos = 0  # the transcript offset fed to it so far
        self._screen_fd = -1
        self._feeding = False
        self._term_size: tuple[int, int] | None = None  # the terminal's, as last posted
        # Shown on screen (Show/Hide from the layout): a tab in the background does no
        # work for new output, it only notes that it is behind and catches up when shown.
        self._shown = False
        self._behind = False
        self._built = False  # the view is mounted (see `build`)
        self._build_wanted = False  # build() came before the pane was composed
        self._view_ready = False  # the view and the live block are mounted
        self._wrap = wrap  # what `set_wrap` last asked for

    def compose(self) -> ComposeResult:
        yield self._status  # the output view comes with `build()`

    def on_mount(self) -> None:
        # Not `_render_status`: `is_mounted` turns true only after this handler, and a
        # finished session opened from the history gets no later update to show it.
        self._show_status()
        # Attached while a full-screen program runs: its screen (once mounted).
        self.call_later(self._sync_screen)
        if self._tap is not None:
            self._drain(self._tap)
        if self._build_wanted:
            self.build()

    def on_unmount(self) -> None:
        if self._tap is not None:
            self._tap.close()
        self._close_screen_fd()

    def on_show(self) -> None:
        self.build()  # (the app builds a tab before it shows it)
        self._shown = True
        if self._behind:
            self.output_grew()

    def on_hide(self) -> None:
        self._shown = False

    def watch_info(self, old: SessionInfo | None, new: SessionInfo | None) -> None:
        if old is not None and new is not None and new.run != old.run:
            self._live = LiveBacklog(LIVE_WINDOW)  # a new run: the last one's is not latest
        self._render_status()
        self._render_live()
        self._sync_screen()

    def watch_follow_note(self) -> None:
        self._render_status()

    def watch_typing(self, typing: bool) -> None:
        self.set_class(typing, "-input")
        self._render_status()

    def watch_search_note(self) -> None:
        self._render_status()

    @on(TranscriptView.SearchChanged)
    def _search_changed(self, event: TranscriptView.SearchChanged) -> None:
        searching = event.transcript_view.searcher is not None
        self.search_note = search_status(event) if searching else ""

    @on(TranscriptView.Resized)
    def _view_resized(self, event: TranscriptView.Resized) -> None:
        event.stop()
        self._terminal_sized(event.cols, event.rows)

    def on_resize(self, event: events.Resize) -> None:
        # The view, hidden under a full-screen program, hears of no resize: say it here.
        if self._screen is not None and self.has_class("-full-screen"):
            height = event.size.height - 1  # the status line
            room = self.view.styles.scrollbar_size_vertical  # as the view counts its text
            self._terminal_sized(event.size.width - room, height)

    def _terminal_sized(self, cols: int, rows: int) -> None:
        info = self.info
        if info is None or not info.spec.tty or cols < 2 or rows < 1:
            return
        self._term_size = (cols, rows)
        if self._screen is not None:
            self._screen.resize(cols, rows)
        self.post_message(self.TerminalSized(self, cols, rows))

    @on(TerminalScreen.Reply)
    def _screen_reply(self, event: TerminalScreen.Reply) -> None:
        # The program asked its terminal (cursor position, attributes): the app types
        # the answer in, as a terminal would.
        event.stop()
        self.post_message(self.TerminalReply(self, event.data))

    @on(TranscriptView.FollowChanged)
    def _follow_changed(self, event: TranscriptView.FollowChanged) -> None:
        if event.following:
            self.follow_note = ""
        else:
            new = event.new_lines
            self.follow_note = f"↓ {new} new line{'s' * (new != 1)} (f to follow)" if new else ""

    @property
    def view(self) -> TranscriptView:
        """The output view (made with the pane; mounted once built)."""
        return self._panel.view

    @property
    def built(self) -> bool:
        return self._built

    def build(self) -> None:
        """Mount the output view, if not yet.  A tab is built when first shown, or by
        the app in the background once the screen is up: attaching to 100 sessions
        mounted some 18 widgets per tab (style, compose, layout) before the first
        screen, 10 s on a busy machine.  Right after this call the view can take the
        keyboard: its widgets are in the DOM, their mounting follows."""
        if self._built or not self.is_attached:  # (not attached: the app is exiting)
            return
        if self._status.parent is not self:  # not composed yet: once it is (on_mount)
            self._build_wanted = True
            return
        self._built = True
        mounted = self.mount(self._panel, before=self._status)

        async def then() -> None:
            await mounted
            self._view_ready = True  # their children composed: the live block can show
            self.view.wrap = self._wrap  # switched (`W`) while it was not mounted
            self._render_live()
            self._sync_screen()

        self.call_later(then)

    def set_wrap(self, wrap: bool) -> None:
        """Soft-wrap the output (`W` in any tab switches every tab)."""
        self._wrap = wrap
        if self._view_ready:
            self.view.wrap = wrap
        # else: once the view is mounted (see `build`)

    @property
    def focus_target(self) -> TranscriptView | TerminalScreen:
        """What takes the keyboard in this tab: the live screen while a full-screen
        program runs, else the transcript view."""
        if self._screen is not None and self.has_class("-full-screen"):
            return self._screen
        return self.view

    @property
    def app_cursor(self) -> bool:
        """Whether the full-screen program shown asked for application cursor keys
        (DECCKM): its arrows are sent as `ESC O A`."""
        screen = self._screen
        return (
            screen is not None
            and self.has_class("-full-screen")
            and DECCKM in screen.pyte_screen.mode
        )

    @property
    def terminal_screen(self) -> TerminalScreen | None:
        """The live screen of a full-screen program, once one has run here."""
        return self._screen

    def output_grew(self) -> None:
        """The session printed more: the transcript view and, while a full-screen
        program runs, its screen catch up (at most once per pass of the loop).  A pane
        not on screen only notes it: it catches up once shown."""
        if not self._shown:
            self._behind = True
            return
        self._behind = False
        self.view.refresh_source()
        if self.has_class("-full-screen") and not self._feeding:
            self._feeding = True
            self.call_later(self._feed_screen)

    # -- a full-screen program's screen -------------------------------------------

    def _sync_screen(self) -> None:
        """Show the live screen while the program uses the alternate screen, the
        transcript otherwise (info.alt_screen, from the engine)."""
        info = self.info
        if info is None or not self.is_mounted or not self._view_ready:
            return
        at = info.alt_screen
        if at is None:
            if self.has_class("-full-screen"):
                self.remove_class("-full-screen")
                self._close_screen_fd()
                if self._screen is not None and self._screen.has_focus:
                    self.screen.set_focus(self.view)
            return
        if at == self._screen_at and self.has_class("-full-screen"):
            return
        self._screen_at = at
        cols, rows = self._term_size or (info.spec.cols, info.spec.rows)
        if self._screen is None:
            self._screen = TerminalScreen(cols=cols, rows=rows)
            live = self._live_tail.parent is self  # (in the DOM from its mount's start)
            self.mount(self._screen, before=self._live_tail if live else self._status)
        else:
            self._screen.reset()
            self._screen.resize(cols, rows)
        self._close_screen_fd()
        try:
            self._screen_fd = os.open(info.transcript, os.O_RDONLY | os.O_CLOEXEC)
            end = os.fstat(self._screen_fd).st_size
        except OSError:
            return  # no transcript to read: the transcript view says why
        # From where it entered; a long-running one from its latest output only.
        self._screen_pos = max(at, end - SCREEN_REPLAY)
        self.add_class("-full-screen")
        if self.view.has_focus:
            self.screen.set_focus(self._screen)
        self._screen.replies = False  # old queries were answered long ago
        self._feeding = True
        self.call_later(self._feed_screen)

    def _feed_screen(self) -> None:
        self._feeding = False
        screen, fd = self._screen, self._screen_fd
        if screen is None or fd < 0:
            return
        try:
            end = os.fstat(fd).st_size
            data = os.pread(fd, min(SCREEN_FEED, end - self._screen_pos), self._screen_pos)
        except OSError:
            return
        if not data:
            screen.replies = True  # caught up: what comes now is live
            return
        self._screen_pos += len(data)
        screen.feed(data)
        if self._screen_pos < end:  # more: the next step after this frame's messages
            self._feeding = True
            self.call_later(self._feed_screen)
        else:
            screen.replies = True

    def _close_screen_fd(self) -> None:
        if self._screen_fd >= 0:
            os.close(self._screen_fd)
            self._screen_fd = -1

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
        if not self.is_mounted or info is None or not self._view_ready:
            return
        block = self._live_tail
        if info.write_error is None or not self._live:
            block.hide()
            return
        if not self._live_ready:  # the first time: once it is mounted, children and all
            if not self._live_mounting:
                self._live_mounting = True
                self.call_later(self._mount_live)
            return
        why = "disk full" if disk_full(info.write_error) else info.write_error
        header = f"── {info.bytes_lost:,} bytes not kept on disk ({why}); the latest output: ──"
        block.show(header, tail_lines(self._live.chunks()))

    async def _mount_live(self) -> None:
        if not self.is_attached or self._status.parent is not self:  # closed meanwhile
            return
        await self.mount(self._live_tail, before=self._status)
        # Only now: its parent is set as the mount starts, its children come after (a
        # drain in between found no lines to update, and its worker died of it).
        self._live_ready = True
        self._render_live()

    def tick(self) -> None:
        """A second went by: a countdown in the status line moves on."""
        if self.info is not None and self.info.kill_at is not None:
            self._render_status()

    def _render_status(self) -> None:
        if self.is_mounted:
            self._show_status()

    def _show_status(self) -> None:
        info = self.info
        if info is None:
            return
        lines = f"{info.lines} line" + ("" if info.lines == 1 else "s")
        parts = [state_label(info), f"run {info.run}", size(info.bytes), lines]
        if self.typing:
            parts.insert(0, "⌨ INPUT: keys go to the program (ctrl+] leaves)")
        if info.reason and info.state.final and info.reason != info.state.value:
            parts.append(info.reason)
        if info.write_error:
            # The loss first: the error's text can be long.
            parts.append(f"⚠ {size(info.bytes_lost)} not kept on disk: {info.write_error}")
        if self.search_note:
            parts.append(self.search_note)
        if self.follow_note:
            parts.append(self.follow_note)
        text = " · ".join(parts)
        if text != self._status_text:
            self._status_text = text
            # The reason and the write error are a process's, a disk's or a server's
            # words.  One line high whatever it says: no layout, only a repaint.
            self._status.update(plain(text), layout=False)
