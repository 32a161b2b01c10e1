"""A scrolling view of one transcript (or any text file) of any size, following new output."""

from __future__ import annotations

import os
import threading
import time
from contextlib import ExitStack
from pathlib import Path
from typing import ClassVar, NamedTuple

from rich.segment import Segment
from rich.style import Style
from textual import on, work
from textual.binding import Binding, BindingType
from textual.cache import LRUCache
from textual.dom import DOMNode
from textual.events import Click, Resize
from textual.geometry import Offset, Region, Size
from textual.message import Message
from textual.reactive import reactive, var
from textual.scroll_view import ScrollView
from textual.scrollbar import ScrollBar
from textual.selection import Selection
from textual.strip import Strip
from textual.timer import Timer
from textual.widget import Widget
from textual.worker import get_current_worker

from ccx_tui.engine.transcripts.line_index import INDEX_NAME
from ccx_tui.engine.transcripts.reader import MAX_LINE_BYTES, Line, TranscriptReader
from ccx_tui.engine.transcripts.search import Query, Searcher
from ccx_tui.engine.transcripts.transcript import (
    META,
    SIDECAR_NAME,
    STDERR,
    STDOUT,
    TRANSCRIPT_NAME,
    read_segments,
)
from ccx_tui.errors import TranscriptError
from ccx_tui.widgets.ansi import UNKNOWN, line_streams, line_text, line_times
from ccx_tui.widgets.plain_lines import plain_lines
from ccx_tui.widgets.recently_hidden import recently_hidden
from ccx_tui.widgets.row_map import SEPARATOR, Place, RowMap
from ccx_tui.widgets.run_separators import RunSeparators
from ccx_tui.widgets.thumb_scrollbar import ThumbScrollBar
from ccx_tui.widgets.wrap_scan import WrapScanner, rows_for

CACHE_LINES = 512
"""Rendered lines kept (LRU); far more than a screen, so a window is read once."""
SYNC_INDEX_BYTES = 4 * 1024 * 1024
"""A file up to this size is indexed at once on mount; a bigger one shows its tail first."""
INDEX_STEP = 64 * 1024 * 1024
"""Bytes indexed per worker step, between cancellation checks and progress messages."""
TAIL_LINES = 256
"""Lines read backwards from the end of a big file to show before it is indexed."""
FRAME = 1 / 30
"""How often coalesced `refresh_source` calls may start a new indexing pass."""
FLOOD_GAP = 0.125
"""Under a steady flow of output a new pass starts at most this long after the last
one: the first line after a pause shows within a frame, a flood is repainted 8 times
a second (each pass repaints the whole view; 30 a second took most of the app's time
with many busy sessions, and held up keys such as a tab switch)."""
SEARCH_STEP = 32 * 1024 * 1024
"""Bytes scanned per search worker step, between cancellation checks and progress."""
MAX_COPY_LINES = 100_000
"""A mouse selection copies at most this many lines (the clipboard is not a file)."""
TIME_WIDTH = 9  # "HH:MM:SS "

# The uncropped line, the style to pad it with, and when it arrived (None: unknown).
_Rendered = tuple[Strip, Style, float | None]


class _Frame(NamedTuple):
    """What all the lines of one frame of the view share (see `render_lines`)."""

    scroll_x: int
    scroll_y: int
    width: int
    rows: int
    window_end: int
    gutter: int
    wrap_width: int  # 0: lines are not wrapped
    mapped: bool
    selection: Selection | None
    cursor_line: int | None
    stamps: bool
    numbers: bool
    numbered: bool  # lines have numbers (the tail of a big file's have not)


class TranscriptView(ScrollView, can_focus=True):
    """Shows a transcript file through the Line API, reading only the visible lines.

    Opening a huge file shows its last screen at once (from the file's tail) while a
    worker thread indexes it.  While `following`, new output keeps the view at the
    bottom; scrolling up stops following and counts `new_lines` until End / `f`.
    Lines from stderr (per the `chunks.bin` sidecar beside a `transcript.log`) are
    tinted.
    """

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("up,k", "scroll_by(0, -1)", "Up", show=False),
        Binding("down,j", "scroll_by(0, 1)", "Down", show=False),
        # The keys of `less` too: space b, ctrl+f ctrl+b, ctrl+d ctrl+u, 0 $.  ctrl+f is
        # the search bar's filter only while the bar has focus, which this view has not.
        Binding("pageup,b,ctrl+b", "page(-1)", "Page up", show=False),
        Binding("pagedown,space,ctrl+f", "page(1)", "Page down", show=False),
        Binding("ctrl+u", "half_page(-1)", "Half page up", show=False),
        Binding("ctrl+d", "half_page(1)", "Half page down", show=False),
        Binding("left", "sideways(-1)", "Left", show=False),
        Binding("right", "sideways(1)", "Right", show=False),
        Binding("0", "line_start", "Line start", show=False),
        Binding("dollar_sign", "line_end", "Line end", show=False),
        Binding("g,home", "top", "Top", show=False),
        Binding("G,end", "follow", "Bottom", show=False),
        Binding("f", "follow", "Follow"),
        Binding("n", "next_match", "Next match", show=False),
        Binding("N", "previous_match", "Previous match", show=False),
        Binding("t", "toggle_timestamps", "Times", show=False),
        Binding("W", "toggle_wrap", "Wrap", show=False),
    ]

    COMPONENT_CLASSES: ClassVar[set[str]] = {
        "transcript-view--stderr",
        "transcript-view--meta",
        "transcript-view--cut",
        "transcript-view--gutter",
        "transcript-view--match",
        "transcript-view--cursor",
        "transcript-view--separator",
    }

    DEFAULT_CSS = """
    TranscriptView {
        background: $surface;
        color: $foreground;
        &:focus { background-tint: $foreground 5%; }
        & > .transcript-view--stderr { background: $error 15%; }
        & > .transcript-view--meta { color: $text-muted; text-style: italic; }
        & > .transcript-view--cut { color: $text-muted; text-style: dim italic; }
        & > .transcript-view--gutter { color: $text-muted; }
        & > .transcript-view--match { background: $warning 45%; }
        & > .transcript-view--cursor { background: $accent 35%; }
        & > .transcript-view--separator { color: $text-accent; background: $accent 10%; }
    }
    """

    following: var[bool] = var(True, init=False)
    """True while new output keeps the view at the bottom."""
    new_lines: var[int] = var(0, init=False)
    """Lines that arrived since following stopped (0 while following)."""
    show_line_numbers: reactive[bool] = reactive(False)
    """Show a gutter with 1-based line numbers (always shown while filtering)."""
    show_timestamps: reactive[bool] = reactive(False)
    """Show when each line arrived (from the `chunks.bin` sidecar)."""
    cursor_line: var[int | None] = var(None, init=False)
    """The highlighted line (0-based): the current match, or a clicked line."""
    filtering: var[bool] = var(False, init=False)
    """Show only the lines that match the search (set through `set_filter`)."""
    wrap: reactive[bool] = reactive(False)
    """Soft-wrap long lines onto more rows instead of scrolling sideways (not while
    filtering, nor on the tail of a big file shown before it is indexed)."""

    class FollowChanged(Message):
        """`following` or `new_lines` changed (e.g. to show "↓ 1234 new lines")."""

        def __init__(
            self, transcript_view: TranscriptView, following: bool, new_lines: int
        ) -> None:
            super().__init__()
            self.transcript_view = transcript_view
            self.following = following
            self.new_lines = new_lines

        @property
        def control(self) -> TranscriptView:
            return self.transcript_view

        def can_replace(self, message: Message) -> bool:
            return (
                isinstance(message, TranscriptView.FollowChanged)
                and message.transcript_view is self.transcript_view
            )

    class Resized(Message):
        """The view's text area has a new size (a terminal session's terminal follows)."""

        def __init__(self, transcript_view: TranscriptView, cols: int, rows: int) -> None:
            super().__init__()
            self.transcript_view = transcript_view
            self.cols = cols
            self.rows = rows

        @property
        def control(self) -> TranscriptView:
            return self.transcript_view

    class SearchChanged(Message):
        """The search's results or the current match changed (for `match i/N`)."""

        def __init__(
            self,
            transcript_view: TranscriptView,
            *,
            total: int,
            index: int | None,
            scanning: bool,
            capped: bool,
        ) -> None:
            super().__init__()
            self.transcript_view = transcript_view
            self.total = total
            """Matching lines found so far."""
            self.index = index
            """1-based number of the current match, None if the cursor is on none."""
            self.scanning = scanning
            """The scan has not reached the end of the file yet."""
            self.capped = capped
            """More matches than are kept: navigation covers the first ones only."""

        @property
        def control(self) -> TranscriptView:
            return self.transcript_view

        def can_replace(self, message: Message) -> bool:
            return (
                isinstance(message, TranscriptView.SearchChanged)
                and message.transcript_view is self.transcript_view
            )

    class WrapToggled(Message):
        """The user switched soft wrap (`W`): the app may switch its other views too."""

        def __init__(self, transcript_view: TranscriptView, wrap: bool) -> None:
            super().__init__()
            self.transcript_view = transcript_view
            self.wrap = wrap

        @property
        def control(self) -> TranscriptView:
            return self.transcript_view

    class _Searched(Message, bubble=False):
        """From the search worker: more of the file is scanned for search `gen`."""

        def __init__(self, gen: int, done: bool) -> None:
            super().__init__()
            self.gen = gen
            self.done = done

        def can_replace(self, message: Message) -> bool:
            return isinstance(message, TranscriptView._Searched) and message.gen == self.gen

    class _Indexed(Message, bubble=False):
        """From the indexing worker: more of the file is indexed (`done`: pass over)."""

        def __init__(self, done: bool) -> None:
            super().__init__()
            self.done = done

        def can_replace(self, message: Message) -> bool:
            return isinstance(message, TranscriptView._Indexed)

    class _Wrapped(Message, bubble=False):
        """From the wrap worker: lines found taller than a row (line, rows), in order."""

        def __init__(self, gen: int, tall: list[tuple[int, int]], done: bool) -> None:
            super().__init__()
            self.gen = gen
            self.tall = tall
            self.done = done

    def __init__(
        self,
        path: Path,
        *,
        follow: bool = True,
        wrap: bool = False,
        name: str | None = None,
        id: str | None = None,
        classes: str | None = None,
    ) -> None:
        """Open `path` (raises `TranscriptError` if it cannot be opened).

        Args:
            path: The file to show; `chunks.bin` beside a `transcript.log` gives streams.
            follow: Start following new output.
            wrap: Start with long lines soft-wrapped.
            name: The name of the widget.
            id: The ID of the widget in the DOM.
            classes: The CSS classes of the widget.
        """
        super().__init__(name=name, id=id, classes=classes)
        self.path = Path(path)
        ours = self.path.name == TRANSCRIPT_NAME  # a session's, with its sidecars
        index = self.path.with_name(INDEX_NAME) if ours else None
        self._reader = TranscriptReader(self.path, index)
        self._sidecar = self.path.with_name(SIDECAR_NAME) if ours else None
        self._cache: LRUCache[int, _Rendered] = LRUCache(CACHE_LINES)
        self._frame: _Frame | None = None  # while a frame is drawn (render_lines)
        self._blank: Strip | None = None  # this frame's row past the end, once made
        self._tail: list[bytes] | None = None  # shown until the first index pass ends
        self._line_count = 0  # lines shown: a snapshot, so a frame sees one count
        self._indexed_size = 0
        self._max_width = 0
        self._width_pending = False
        self._timer: Timer | None = None
        self._last_pass = 0.0  # time.monotonic() when the last indexing pass started
        self._wanted = False  # refresh_source called; start a pass on the next tick
        self._hidden = False  # in a tab not shown: new output waits until it is
        self._drawn: tuple[int, int] | None = None  # the items the last frame showed
        self._styled_focus = False  # whether its style is that of `:focus`
        self._text_size: tuple[int, int] | None = None  # last posted as Resized
        self._lock = threading.Lock()  # guards the two flags below
        self._indexing = False  # a worker may be using the reader
        self._closed = False
        self._file_id = _file_id(self.path)  # to notice the file being replaced (rotated)
        self._restarted = False  # set by the worker: the reader started over
        self._first_pass = False
        self._styles: dict[int, Style] | None = None  # by stream; -1: the cut marker
        self._query: Query | None = None
        self._searcher: Searcher | None = None
        self._search_gen = 0  # bumped per search: stale worker messages are dropped
        self._scanning: Searcher | None = None  # the searcher a worker is scanning
        self._scan_wanted = False  # new output arrived during a scan: scan again after
        self._filter_count = 0  # rows shown while filtering: a snapshot of the matches
        self._jump_pending = 0  # n/N found nothing yet while the scan goes on
        self._seen_generation = 0  # the searcher's; a new one means it started over
        # Rows of lines: soft wrap and run separators (see row_map.py).
        self._row_map = RowMap()
        self._runs = RunSeparators(self.path if self._sidecar else None)
        self._wrap_gen = 0  # bumped per width: a stale worker's finds are dropped
        self._wrap_scanner: WrapScanner | None = None
        self._wrapping = False  # a worker scans for the current width
        self._wrap_wanted = False  # the file grew during a scan: scan again after
        self.set_reactive(TranscriptView.following, follow)
        self.set_reactive(TranscriptView.wrap, wrap)  # measured once the view has a size

    def watch_has_focus(self, has_focus: bool) -> None:
        """Restyle for `:focus` only a view in sight whose style says otherwise.

        A tab switch blurs the view it hides and focuses the one it shows, which had
        the focus when it was hidden: with the restyle of a hidden view put off until
        it shows (`on_show`), neither is restyled (each restyle cost about 5 ms).
        """
        if has_focus != self._styled_focus and self._in_sight():
            self._restyle_focus()

    def _in_sight(self) -> bool:
        node: DOMNode | None = self
        while isinstance(node, Widget):
            if not node.display:
                return False
            node = node.parent
        return True

    @property
    def vertical_scrollbar(self) -> ScrollBar:
        # Textual's, made with a scrollbar that repaints only when its thumb moves
        # (the followed tail scrolls at every frame; see thumb_scrollbar.py).
        if self._vertical_scrollbar is None:
            self._vertical_scrollbar = self._new_bar(True, self.scrollbar_size_vertical)
        return self._vertical_scrollbar

    @property
    def horizontal_scrollbar(self) -> ScrollBar:
        if self._horizontal_scrollbar is None:
            self._horizontal_scrollbar = self._new_bar(False, self.scrollbar_size_horizontal)
        return self._horizontal_scrollbar

    def _new_bar(self, vertical: bool, thickness: int) -> ThumbScrollBar:
        name = "vertical" if vertical else "horizontal"
        bar = ThumbScrollBar(vertical=vertical, name=name, thickness=thickness)
        bar.display = False
        self.app._start_widget(self, bar)
        return bar

    def _scroll_update(self, virtual_size: Size) -> None:
        # Textual's, which repaints the scrollbars whether or not their thumbs moved.
        with ExitStack() as stack:
            for bar in (self._vertical_scrollbar, self._horizontal_scrollbar):
                if isinstance(bar, ThumbScrollBar):
                    stack.enter_context(bar.sizing())
            super()._scroll_update(virtual_size)

    def _restyle_focus(self) -> None:
        """The view alone: Textual's restyle of its scrollbars too re-set their rules
        (`display` among them) and laid the whole screen out a second time.  They
        take their colours from the view, so a repaint shows its new style on them."""
        self._styled_focus = self.has_focus
        self.app.stylesheet.apply(self, animate=True)
        for bar in (self._vertical_scrollbar, self._horizontal_scrollbar):
            if bar is not None:
                bar.refresh()

    def on_mount(self) -> None:
        self._timer = self.set_interval(FRAME, self._tick, pause=True)
        self._reader.refresh(SYNC_INDEX_BYTES)  # small and page-cached: cheap
        self._runs.poll()
        self._adopt_runs()
        if self._reader.fully_indexed or not self.following:
            self._sync(quiet=True)  # not following: the top is shown while indexing
        else:
            self._tail = self._reader.tail(TAIL_LINES, MAX_LINE_BYTES + 1)
            self._update_virtual_size()
            self._scroll_bottom()
        if not self._reader.fully_indexed:
            self._first_pass = True  # lines it finds were there before: not "new"
            self._start_index()

    def on_unmount(self) -> None:
        recently_hidden(self.app).left(self)
        with self._lock:
            self._closed = True
            if not self._indexing:
                self._reader.close()  # else the worker closes it when it stops
        self._searcher = None

    def on_hide(self) -> None:
        self._hidden = True
        if self._drawn is None:
            self._cache.clear()
            return
        # The items the last frame showed are kept while this is one of the views
        # hidden last: a switch back draws from them (see recently_hidden.py).  (Hidden,
        # the view has no size: what was on screen is known from the frame only.)
        first, end = self._drawn
        for item in [item for item in self._cache.keys() if not first <= item < end]:
            self._cache.discard(item)
        recently_hidden(self.app).hidden(self)

    def drop_lines(self) -> None:
        if self._hidden:
            self._cache.clear()

    def on_show(self) -> None:
        self._hidden = False
        recently_hidden(self.app).left(self)
        if self.has_focus != self._styled_focus:
            self._restyle_focus()  # put off while hidden
        if self._wanted and self._timer is not None:
            self._timer.resume()  # catch up with what arrived while hidden
        self._check_wrap_width()  # wrap switched on (or the width changed) out of sight

    def on_resize(self, event: Resize) -> None:
        if self.following:
            self._scroll_bottom()
        self.call_after_refresh(self._post_text_size)  # once the layout has settled
        self.call_after_refresh(self._check_wrap_width)

    @property
    def text_size(self) -> tuple[int, int]:
        """(columns, rows) for text, as if the scrollbar were shown: a terminal
        session's width must not change (and its program redraw) when its output first
        overflows the view."""
        width = self.size.width - self.styles.scrollbar_size_vertical
        return max(width, 1), self.size.height

    def _post_text_size(self) -> None:
        size = self.text_size
        if size != self._text_size and self.size.width > 0:
            self._text_size = size
            self.post_message(self.Resized(self, *size))

    def watch_following(self, following: bool) -> None:
        if following:
            self.new_lines = 0
            self._scroll_bottom()
        self._post_follow()

    def watch_new_lines(self) -> None:
        self._post_follow()

    def watch_show_line_numbers(self) -> None:
        self._update_virtual_size()
        self.refresh()
        self._check_wrap_width()

    def watch_show_timestamps(self) -> None:
        self._update_virtual_size()
        self.refresh()
        self._check_wrap_width()

    def watch_wrap(self, wrap: bool) -> None:
        anchor = self._anchor()
        self._reset_wrap()
        if wrap:
            self.scroll_to(x=0, animate=False, immediate=True, force=True)
            self._start_wrap()
        self._relayout(anchor)

    def watch_cursor_line(self) -> None:
        self.refresh()
        self._post_search()

    def watch_show_horizontal_scrollbar(self) -> None:
        # The scrollbar that appears with a wide line moves the bottom up a row.
        if self.following:
            self.call_after_refresh(self._stick_to_bottom)

    def watch_scroll_y(self, old_value: float, new_value: float) -> None:
        super().watch_scroll_y(old_value, new_value)
        # Any move away from the bottom (keys, wheel, scrollbar) stops following;
        # a shrinking maximum (file truncated, taller window) is not a move.
        if self.following and new_value < old_value and round(new_value) < self.max_scroll_y:
            self.following = False

    @on(_Indexed)
    def _indexed(self, message: _Indexed) -> None:
        if self._closed:
            return
        first_pass = self._first_pass
        self._first_pass = self._first_pass and not message.done
        self._adopt_runs()
        if self._tail is None:
            self._sync(quiet=first_pass)
        elif message.done:
            self._leave_tail()
        if message.done and self._searcher is not None:
            self._start_scan()  # the search covers what was just appended

    @on(_Searched)
    def _searched(self, message: _Searched) -> None:
        searcher = self._searcher
        if self._closed or message.gen != self._search_gen or searcher is None:
            return
        if self.filtering:
            count = searcher.kept
            if count != self._filter_count or searcher.generation != self._seen_generation:
                self._seen_generation = searcher.generation
                self._filter_count = count
                self._cache.clear()  # rows moved if the scan started over
                self._update_virtual_size()
                self.refresh()
                if self.following:
                    self._scroll_bottom()
        if self._jump_pending:
            step, self._jump_pending = self._jump_pending, 0
            self.goto_match(step)
        if message.done and self._scan_wanted:
            self._scan_wanted = False
            self._start_scan()
        self._post_search()

    @on(_Wrapped)
    def _wrapped(self, message: _Wrapped) -> None:
        if self._closed or message.gen != self._wrap_gen:
            return
        if message.tall:
            anchor = self._anchor()
            for line, rows in message.tall:
                self._row_map.add_tall(line, rows)
            self._update_provisional()
            self._relayout(anchor)
        if message.done:
            self._wrapping = False
            if self._wrap_wanted:
                self._wrap_wanted = False
                self._start_wrap()

    def on_click(self, event: Click) -> None:
        offset = event.get_content_offset(self)
        if offset is None or self._tail is not None:
            return
        row = round(self.scroll_y) + offset.y
        if row < self._rows:
            self.cursor_line = self._line_of(row)

    # force=True throughout: a tab just switched to has no scrollbar laid out yet, and
    # without force a key pressed at once would not scroll it.
    def action_scroll_by(self, x: int, y: int) -> None:
        self.scroll_relative(x=x, y=y, animate=False, force=True)

    def action_page(self, pages: int) -> None:
        height = self.scrollable_content_region.height
        self.scroll_relative(y=pages * height, animate=False, force=True)

    def action_half_page(self, direction: int) -> None:
        """Half a screen down (1) or up (-1), as ctrl+d / ctrl+u in `less`."""
        half = max(self.scrollable_content_region.height // 2, 1)
        self.action_scroll_by(0, direction * half)

    def action_sideways(self, direction: int) -> None:
        """Half the text's width right (1) or left (-1), as the arrows in `less`."""
        half = max(self._text_width // 2, 1)
        self.action_scroll_by(direction * half, 0)

    def action_line_start(self) -> None:
        self.scroll_to(x=0, animate=False, force=True)

    def action_line_end(self) -> None:
        """Show the end of the longest line on screen at the right edge (or the start
        of the lines if all of them fit)."""
        if self._wrapped_view:
            return  # every line is shown whole
        top = round(self.scroll_y)
        bottom = min(top + self.scrollable_content_region.height, self._rows)
        end = self._window_end()
        places = [self._place(row) for row in range(top, bottom)]
        longest = max(
            (self._rendered(p.line, end)[0].cell_length for p in places if p.part >= 0),
            default=0,
        )
        if self._width_pending:
            self._update_virtual_size()  # a line just read may widen what can be scrolled
        self.scroll_to(x=max(longest - self._text_width, 0), animate=False, force=True)

    def action_top(self) -> None:
        # Explicitly: when the view is already at the top (say, output not indexed yet),
        # scrolling there changes nothing and would leave it following.
        self.following = False
        self.scroll_home(animate=False, force=True)

    def action_follow(self) -> None:
        """Follow new output again and jump to the bottom."""
        if self.following:
            self._scroll_bottom()
        else:
            self.following = True

    def action_next_match(self) -> None:
        self.goto_match(1)

    def action_previous_match(self) -> None:
        self.goto_match(-1)

    def action_toggle_timestamps(self) -> None:
        self.show_timestamps = not self.show_timestamps

    def action_toggle_wrap(self) -> None:
        self.wrap = not self.wrap
        self.post_message(self.WrapToggled(self, self.wrap))
        if self.filtering:
            self.notify("wrap shows once the filter is off", timeout=3)

    # -- public -------------------------------------------------------------------------

    @property
    def line_count(self) -> int:
        """Lines indexed and shown (0 while only the tail of a big file is shown)."""
        return self._line_count

    @property
    def showing_tail(self) -> bool:
        """True while the tail of a big file is shown and its first index pass runs."""
        return self._tail is not None

    @property
    def wrap_pending(self) -> bool:
        """True while wrap is on and lines are still being measured."""
        return self.wrap and (self._wrapping or self._wrap_scanner is None)

    @property
    def cached_lines(self) -> int:
        """Rendered lines held in memory (at most `CACHE_LINES`)."""
        return len(self._cache)

    @property
    def searcher(self) -> Searcher | None:
        """The current search (its `matches` are the matching line numbers)."""
        return self._searcher

    def search(self, query: Query | None) -> None:
        """Find and highlight `query` over the whole file in a worker (None: stop).

        Matches stream in (`SearchChanged`); output appended later is searched too.
        Raises `TranscriptError` if the file cannot be opened.
        """
        self._search_gen += 1
        self._jump_pending = 0
        self._scan_wanted = False
        if query is None:
            self.set_filter(False)  # while the old matches can still place the cursor
        self._searcher = Searcher(self.path, query) if query else None
        self._query = query
        self._cache.clear()
        if self._searcher is not None:
            self._filter_count = 0
            self._start_scan()
        self._update_virtual_size()
        self.refresh()
        self._post_search()

    def set_filter(self, on: bool) -> bool:
        """Show only matching lines (with their numbers), or all lines again, keeping
        the cursor's (else the top) line in place.  False if there is no search."""
        if on and self._searcher is None:
            return False
        if on == self.filtering:
            return True
        rows = self._rows
        top = round(self.scroll_y)
        anchor = self.cursor_line
        if anchor is None:
            anchor = self._line_of(min(top, rows - 1)) if rows and self._tail is None else 0
        screen_offset = self._row_of(anchor) - top
        self.filtering = on
        if on:
            assert self._searcher is not None
            self._filter_count = self._searcher.kept
        self._cache.clear()
        self._update_virtual_size()
        self.refresh()
        if self.following:
            self._scroll_bottom()
        else:
            y = max(self._row_of(anchor) - max(screen_offset, 0), 0)
            # force: the scrollbar that allows scrolling appears only with the next layout
            self.scroll_to(y=y, animate=False, immediate=True, force=True)
        return True

    def goto_match(self, step: int) -> None:
        """Move the cursor to the next (step 1) or previous (-1) match, wrapping around
        at the ends; waits for the scan if it has found none there yet."""
        searcher = self._searcher
        if searcher is None:
            return
        if self.cursor_line is not None:
            ref = self.cursor_line
        else:  # from the screen: the first match on it or after, or the last before
            top = round(self.scroll_y)
            bottom = top + self.scrollable_content_region.height - 1
            row = top if step > 0 else min(bottom, self._rows - 1)
            ref = self._line_of(max(row, 0)) - step if self._rows else -1
        line = searcher.next_match(ref) if step > 0 else searcher.previous_match(ref)
        if line is None:
            if step > 0 and self._scanning is searcher:
                self._jump_pending = step  # more may come: try again when it does
                return
            kept = searcher.kept
            if not kept:
                return
            line = searcher.match_at(0 if step > 0 else kept - 1)  # wrap around
        self.cursor_line = line
        self.following = False
        row = self._row_of(line)
        self.scroll_to(
            y=max(row - self.scrollable_content_region.height // 2, 0),
            animate=False,
            immediate=True,
            force=True,
        )

    def goto_line(self, line: int) -> None:
        """Put the cursor on `line` (0-based) and show it a third of the way down."""
        line = max(0, min(line, self._line_count - 1))
        self.cursor_line = line
        self.following = False
        self.scroll_to(
            y=max(self._row_of(line) - self.scrollable_content_region.height // 3, 0),
            animate=False,
            immediate=True,
            force=True,
        )

    def match_index(self) -> int | None:
        """1-based number of the match under the cursor, if it is on one."""
        searcher, line = self._searcher, self.cursor_line
        if searcher is None or line is None:
            return None
        index = searcher.index_of(line)
        return None if index is None else index + 1

    def visible_lines(self) -> tuple[int, int] | None:
        """The first and last line (0-based) with a row on screen; None if none."""
        if not self._rows:
            return None
        top = round(self.scroll_y)
        bottom = min(top + self.scrollable_content_region.height, self._rows) - 1
        if self._tail is not None:
            return None
        return self._line_of(top), self._line_of(max(bottom, top))

    def current_line(self) -> int | None:
        """The cursor's line, else the last line on screen; None if nothing is shown."""
        if self.cursor_line is not None:
            return self.cursor_line
        if not self._rows or self._tail is not None:
            return None
        bottom = round(self.scroll_y) + self.scrollable_content_region.height - 1
        return self._line_of(min(bottom, self._rows - 1))

    def line_plain(self, number: int, max_bytes: int = 1024 * 1024) -> str | None:
        """Line `number`'s text as shown (colour codes removed), or None if it has none."""
        lines = self._reader.lines(number, number + 1, max_bytes)
        return line_text(lines[0].data).plain if lines else None

    def get_selection(self, selection: Selection) -> tuple[str, str] | None:
        """The text under a mouse selection (at most `MAX_COPY_LINES` lines)."""
        if self._tail is not None or not self._rows:
            return None
        first = selection.start.y if selection.start is not None else 0
        last = selection.end.y if selection.end is not None else self._rows - 1
        last = min(last, self._rows - 1, first + MAX_COPY_LINES - 1)
        if not self._mapped:  # filtering: a row is a line
            texts = [line_text(ln.data).plain for ln in self._read_rows(range(first, last + 1))]
            start = Offset(selection.start.x, 0) if selection.start is not None else None
            end = Offset(selection.end.x, last - first) if selection.end is not None else None
            return Selection(start, end).extract("\n".join(texts)), "\n"
        places = [(row, self._place(row)) for row in range(first, last + 1)]
        places = [(row, place) for row, place in places if place.part >= 0]
        if not places:
            return None
        first_line, last_line = places[0][1].line, places[-1][1].line
        lines = self._reader.lines(first_line, last_line + 1, MAX_LINE_BYTES)
        plain = {ln.number: line_text(ln.data).plain for ln in lines}
        pieces: list[str] = []
        prev = -1
        for row, place in places:
            span = selection.get_span(row)
            if span is None:
                continue
            text = plain.get(place.line, "")
            if self._wrapped_view:  # the row's own part of the line
                cols = self._wrap_width
                text = text[place.part * cols : (place.part + 1) * cols]
            if pieces:  # a line's wrapped parts join without a line break
                pieces.append("\n" if place.line != prev else "")
            cut_start, cut_end = span
            pieces.append(text[cut_start:] if cut_end < 0 else text[cut_start:cut_end])
            prev = place.line
        return "".join(pieces), "\n"

    def selection_updated(self, selection: Selection | None) -> None:
        self.refresh()

    def refresh_source(self) -> None:
        """Pick up data appended to the file (call on new output; cheap and coalesced).

        Indexing runs in a worker thread; at most one pass runs at a time and calls
        arriving meanwhile start a single further pass, at most one per frame.  While
        the view is hidden (a tab in the background) it waits until shown.
        """
        if self._closed:
            return
        self._wanted = True
        if self._timer is not None and not self._hidden:
            self._timer.resume()

    def render_lines(self, crop: Region) -> list[Strip]:
        # What every line of this frame shares, worked out once (per line, those
        # properties and reactives were a third of the time of drawing the view).
        self._frame = frame = self._frame_now()
        rows = frame.rows
        self._drawn = (
            (self._place(min(frame.scroll_y, rows - 1)).line, frame.window_end) if rows else None
        )
        try:
            # Its lines styled on the strips the view keeps, so a followed view's
            # lines keep their strips (and what is cached on them) from frame to
            # frame; Textual's pipeline made them anew at every scroll.
            lines = plain_lines(self, crop, self.render_line)
            return super().render_lines(crop) if lines is None else lines
        finally:
            self._frame = self._blank = None

    def _frame_now(self) -> _Frame:
        scroll_x, scroll_y = self.scroll_offset
        gutter = self._gutter_width
        wrapped = self._wrapped_view
        return _Frame(
            scroll_x=0 if wrapped else scroll_x,  # wrapped: nothing to scroll sideways
            scroll_y=scroll_y,
            width=self.scrollable_content_region.width,
            rows=self._rows,
            window_end=self._window_end(),
            gutter=gutter,
            wrap_width=self._wrap_width if wrapped else 0,
            mapped=self._mapped,
            selection=self.text_selection,
            cursor_line=self.cursor_line if self._tail is None else None,
            stamps=self.show_timestamps,
            numbers=self._numbers_shown,
            numbered=self._tail is None,
        )

    def render_line(self, y: int) -> Strip:
        frame = self._frame or self._frame_now()
        scroll_x, width = frame.scroll_x, frame.width
        index = frame.scroll_y + y
        if index >= frame.rows or self._closed:
            if self._frame is None:
                return Strip.blank(width, self.rich_style)
            # One per frame: the widget's style is worked out through its ancestors
            # (some 50 us; a short output under a tall view has dozens of such rows).
            if self._blank is None:
                self._blank = Strip.blank(width, self.rich_style)
            return self._blank
        place = self._place(index)
        if place.part == SEPARATOR:
            style = self.get_component_rich_style("transcript-view--separator")
            return self._runs.strip(place.line, width, style)
        strip, pad, when = self._rendered(place.line, frame.window_end)
        gutter = frame.gutter
        if frame.wrap_width:  # the row's part of the line
            start = place.part * frame.wrap_width
            body = strip.crop_extend(start, start + frame.wrap_width, pad)
            body = body.extend_cell_length(width - gutter, pad)
        else:
            body = strip.crop_extend(scroll_x, scroll_x + width - gutter, pad)
        body = body.apply_offsets(scroll_x, index)  # lets the mouse select text
        selection = frame.selection
        if selection is not None and (span := selection.get_span(index)) is not None:
            start, end = span
            # The selected cells in view (none: it lies wholly left or right of them).
            length = body.cell_length
            lo = min(max(start - scroll_x, 0), length)
            hi = length if end < 0 else min(max(end - scroll_x, lo), length)
            if hi > lo:
                before, chosen, after = body.divide([lo, hi, length])
                selected = self.screen.get_component_rich_style("screen--selection")
                body = Strip.join([before, _post_style(chosen, selected), after])
        line = place.line if frame.mapped else self._line_of(index)
        if frame.cursor_line is not None and line == frame.cursor_line:
            body = _post_style(body, self.get_component_rich_style("transcript-view--cursor"))
        if not gutter:
            return body
        style = self.get_component_rich_style("transcript-view--gutter")
        text = ""
        if frame.stamps:
            stamp = time.strftime("%H:%M:%S", time.localtime(when)) if when else ""
            text = f"{stamp if place.part == 0 else '':>{TIME_WIDTH - 1}} "
        if frame.numbers:
            shown = frame.numbered and place.part == 0  # a wrapped line's first row
            number = str(line + 1) if shown else ""
            text += f"{number:>{gutter - len(text) - 1}} "
        return Strip.join([Strip([Segment(text, style)], gutter), body])

    def notify_style_update(self) -> None:
        super().notify_style_update()
        self._styles = None
        self._cache.clear()

    # -- internals ----------------------------------------------------------------------

    @property
    def _mapped(self) -> bool:
        """Rows are laid out by the row map: every line, wrapped, with separators
        (filtering shows one row per match; the tail of a big file, one per line)."""
        return self._tail is None and not self.filtering

    @property
    def _wrapped_view(self) -> bool:
        return self.wrap and self._mapped

    @property
    def _wrap_width(self) -> int:
        """Columns a wrapped line fills (as if the scrollbar were shown: it must not
        rewrap the file when it appears)."""
        return max(self.text_size[0] - self._gutter_width, 1)

    @property
    def _rows(self) -> int:
        return self._row_map.total(self._line_count) if self._mapped else self._items

    @property
    def _items(self) -> int:
        """What rows show: tail lines, matches (filtering) or the file's lines."""
        if self._tail is not None:
            return len(self._tail)
        if self.filtering:
            return self._filter_count
        return self._line_count

    def _place(self, row: int) -> Place:
        """The item (see `_items`) and the part of it that row `row` shows."""
        return self._row_map.place(row) if self._mapped else Place(row, 0)

    def _window_end(self) -> int:
        """The item after the last one on screen (what a window read stops at)."""
        bottom = round(self.scroll_y) + self.scrollable_content_region.height - 1
        return min(self._place(max(bottom, 0)).line + 1, self._items)

    @property
    def _numbers_shown(self) -> bool:
        return self.show_line_numbers or self.filtering

    @property
    def _gutter_width(self) -> int:
        width = TIME_WIDTH if self.show_timestamps else 0
        if self._numbers_shown:
            width += len(str(max(self._line_count, len(self._tail or ()), 1))) + 1
        return width

    @property
    def _text_width(self) -> int:
        """Columns of text shown (beside the gutter and the scrollbar)."""
        return max(self.scrollable_content_region.width - self._gutter_width, 0)

    def _rendered(self, row: int, window_end: int) -> _Rendered:
        """Row `row` rendered: from the cache, else read with the rows after it up to
        `window_end` (the bottom of the screen)."""
        rendered = self._cache.get(row)
        return rendered if rendered is not None else self._load_window(row, window_end)

    def _line_of(self, row: int) -> int:
        """The file line shown at `row` (a separator's: the line under it)."""
        if self._mapped:
            return min(self._row_map.place(row).line, max(self._line_count - 1, 0))
        searcher = self._searcher
        if self.filtering and searcher is not None and self._tail is None:
            lines = searcher.match_lines(row, row + 1)
            return lines[0] if lines else 0
        return row

    def _row_of(self, line: int) -> int:
        """The row showing `line` (while filtering: the first match at or after it)."""
        if self._mapped:
            return self._row_map.first_row(line)
        searcher = self._searcher
        if self.filtering and searcher is not None and self._tail is None:
            index = searcher.index_of(line)
            if index is None:
                after = searcher.next_match(line)
                index = searcher.index_of(after) if after is not None else None
            return min(self._rows - 1 if index is None else index, max(self._rows - 1, 0))
        return line

    def _read_rows(self, rows: range) -> list[Line]:
        """The lines shown at `rows`, read in runs of consecutive line numbers."""
        searcher = self._searcher
        if self.filtering and searcher is not None and self._tail is None:
            numbers = searcher.match_lines(rows.start, rows.stop)
        else:
            numbers = list(rows)
        out: list[Line] = []
        i = 0
        while i < len(numbers):
            j = i + 1
            while j < len(numbers) and numbers[j] == numbers[j - 1] + 1:
                j += 1
            out.extend(self._reader.lines(numbers[i], numbers[j - 1] + 1, MAX_LINE_BYTES))
            i = j
        return out

    def _post_search(self) -> None:
        searcher = self._searcher
        self.post_message(
            self.SearchChanged(
                self,
                total=searcher.total if searcher else 0,
                index=self.match_index(),
                scanning=searcher is not None and self._scanning is searcher,
                capped=bool(searcher and searcher.capped),
            )
        )

    def _start_scan(self) -> None:
        searcher = self._searcher
        if searcher is None or self._closed:
            return
        if self._scanning is searcher:
            self._scan_wanted = True
            return
        if self._scanning is not None:
            self._scan_wanted = True  # an old search's worker is still stopping
            return
        self._scanning = searcher
        self._scan(searcher, self._search_gen)

    @work(thread=True, group="transcript-search", exit_on_error=False)
    def _scan(self, searcher: Searcher, gen: int) -> None:
        """Scan for matches in steps, posting progress, until the end of the file."""
        worker = get_current_worker()
        try:
            while not worker.is_cancelled and not self._closed and gen == self._search_gen:
                searcher.scan(SEARCH_STEP)
                if searcher.caught_up:
                    # Then the unfinished last line too (provisionally: counted once).
                    searcher.scan(SEARCH_STEP, final=True)
                    break
                self.post_message(self._Searched(gen, done=False))
        except TranscriptError:
            pass  # the file went away: the results so far stay
        finally:
            self._scanning = None
            self.post_message(self._Searched(self._search_gen, done=True))

    def _post_follow(self) -> None:
        self.post_message(self.FollowChanged(self, self.following, self.new_lines))

    def _scroll_bottom(self) -> None:
        self.scroll_end(animate=False, immediate=True, x_axis=False, force=True)

    def _stick_to_bottom(self) -> None:
        if self.following and round(self.scroll_y) != self.max_scroll_y:
            self._scroll_bottom()

    def _update_virtual_size(self) -> None:
        self._width_pending = False
        width = 0 if self._wrapped_view else self._max_width
        size = Size(width + self._gutter_width, self._rows)
        if size == self.virtual_size:
            return
        if not self.is_mounted:
            self.virtual_size = size
            return
        # Not through the reactive, whose change lays out the whole screen again: the
        # view's own size does not depend on its lines, and a scrollbar appearing still
        # lays it out (its reactive does).  On every pass of a flood, the full layout
        # cost more than the drawing.  As Textual's own `_size_updated` does.
        self.set_reactive(ScrollView.virtual_size, size)
        self._scroll_update(size)
        self.refresh()

    def _tick(self) -> None:
        if self._hidden and self._timer is not None:
            # A tab in the background costs nothing: no indexing (a thread that would
            # compete for the GIL with the tab in front) until it is shown again.
            self._timer.pause()
            return
        if self._indexing:
            return
        if self._wanted:
            now = time.monotonic()
            if now - self._last_pass < FLOOD_GAP:
                return  # a flood: the next tick looks again
            self._wanted = False
            self._last_pass = now
            self._start_index()
        elif self._timer is not None:
            self._timer.pause()

    def _start_index(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._indexing = True
        self._index()

    # Not `exclusive`: cancelling a thread worker does not stop it mid-refresh, so two
    # indexers could race on the reader.  `_indexing` keeps it to one pass at a time.
    @work(thread=True, group="transcript-index", exit_on_error=False)
    def _index(self) -> None:
        """Index what was appended, in steps, posting progress and checking cancellation."""
        worker = get_current_worker()
        try:
            while not worker.is_cancelled and not self._closed:
                file_id = _file_id(self.path)
                grew = self._reader.refresh(INDEX_STEP)
                if file_id is not None and file_id != self._file_id:
                    self._file_id, self._restarted = file_id, True  # after the reset
                if not grew:
                    break
                self.post_message(self._Indexed(done=False))
            self._runs.poll()
        finally:
            # Posted before `_indexing` drops, so no next pass's progress precedes it.
            self.post_message(self._Indexed(done=True))
            with self._lock:
                self._indexing = False
                if self._closed:
                    self._reader.close()

    def _sync(self, quiet: bool = False) -> None:
        """Adopt the reader's new line count: grow, follow or (unless `quiet`) count
        new lines."""
        count, size = self._reader.line_count, self._reader.indexed_size
        old_count = self._line_count
        if size == self._indexed_size and not self._restarted:
            return
        if self._restarted or size < self._indexed_size or count < old_count:
            # The file was truncated or replaced and is being indexed from the start.
            self._restarted = False
            self._cache.clear()
            self._max_width, added = 0, 0
            self._reset_wrap()  # measured again from the start (below)
        else:
            self._cache.discard(old_count - 1)  # the last line may have been partial
            if self.filtering:
                self._cache.discard(self._filter_count - 1)  # it may be the last match
            added = count - old_count
        self._line_count, self._indexed_size = count, size
        if self._wrapped_view:
            self._update_provisional()
            scanner = self._wrap_scanner
            if scanner is None or scanner.width != self._wrap_width:
                self._check_wrap_width()  # not measured yet, or the gutter widened
            else:
                self._start_wrap()  # measure the lines appended
        self._update_virtual_size()
        self.refresh()
        if self.following:
            self._scroll_bottom()
        elif added and not quiet:
            self.new_lines += added

    def _leave_tail(self) -> None:
        """The first index pass is over: show the indexed file at the same place."""
        assert self._tail is not None
        from_bottom = self.max_scroll_y - round(self.scroll_y)
        self._tail = None
        self._cache.clear()
        self._sync(quiet=True)
        self._start_wrap()
        if not self.following:
            self.scroll_to(y=max(self.max_scroll_y - from_bottom, 0), animate=False)

    def _adopt_runs(self) -> None:
        """Show a separator above the first line of every run after the first."""
        anchor = self._anchor()
        if self._runs.take():
            self._row_map.set_separators(list(self._runs.labels))
            self._relayout(anchor)

    def _anchor(self) -> Place | None:
        """What the top row shows, to keep in place while rows above it change
        (None while following: the bottom is kept instead)."""
        if self.following or not self._mapped or not self.is_mounted:
            return None
        return self._row_map.place(round(self.scroll_y))

    def _relayout(self, anchor: Place | None) -> None:
        """Rows changed (wrap, separators): size again and keep the anchor in view."""
        self._update_virtual_size()
        self.refresh()
        if self.following:
            self._scroll_bottom()
        elif anchor is not None and self._mapped:
            row = self._row_map.first_row(anchor.line)
            if anchor.part == SEPARATOR:
                row -= 1
            else:
                row += min(anchor.part, self._row_map.height(anchor.line) - 1)
            self.scroll_to(y=max(row, 0), animate=False, immediate=True, force=True)

    def _reset_wrap(self) -> None:
        """Forget every line's height (wrap turned off, or a new width to measure)."""
        self._row_map.clear_tall()
        self._wrap_scanner = None
        self._wrap_gen += 1  # a worker still scanning stops and is ignored
        self._wrapping = self._wrap_wanted = False

    def _check_wrap_width(self) -> None:
        """Measure the lines if wrap is on and they are not measured at this width."""
        scanner = self._wrap_scanner
        if self._wrapped_view and scanner is None:
            self._start_wrap()
        elif self._wrapped_view and scanner is not None and scanner.width != self._wrap_width:
            anchor = self._anchor()
            self._reset_wrap()
            self._start_wrap()
            self._relayout(anchor)

    def _update_provisional(self) -> None:
        """Measure the unfinished last line (a prompt): the scan stops before it."""
        count = self._line_count
        if not count or self._reader.last_byte == b"\n":
            self._row_map.set_provisional(count, 1)
            return
        lines = self._reader.lines(count - 1, count, MAX_LINE_BYTES)
        cells = _measure(lines[0].data, lines[0].length - len(lines[0].data)) if lines else 0
        self._row_map.set_provisional(count - 1, rows_for(cells, self._wrap_width))

    def _start_wrap(self) -> None:
        """Measure the lines not measured yet at the current width, in a worker."""
        if not self._wrapped_view or self._closed or self.size.width <= 0:
            return
        if not self.is_on_screen:  # a tab in the background: measured once shown
            return
        if self._wrap_scanner is None:
            self._wrap_scanner = WrapScanner(self._wrap_width, _measure)
            self._update_provisional()
        if self._wrapping:
            self._wrap_wanted = True
            return
        self._wrapping = True
        self._wrap_scan(self._wrap_scanner, self._wrap_gen, self._reader.indexed_size)

    @work(thread=True, group="transcript-wrap", exit_on_error=False)
    def _wrap_scan(self, scanner: WrapScanner, gen: int, end: int) -> None:
        """Scan the indexed lines for tall ones, posting each step's finds."""
        worker = get_current_worker()
        fd = -1
        try:
            fd = os.open(self.path, os.O_RDONLY | os.O_CLOEXEC)
            while not worker.is_cancelled and not self._closed and gen == self._wrap_gen:
                before = scanner.pos
                tall = scanner.scan(fd, end)
                if scanner.pos == before:
                    break
                if tall:
                    self.post_message(self._Wrapped(gen, tall, done=False))
        except OSError:
            pass  # the file went away: what was measured stays
        finally:
            if fd >= 0:
                os.close(fd)
            self.post_message(self._Wrapped(gen, [], done=True))

    def _load_window(self, index: int, window_end: int) -> _Rendered:
        """Render rows from `index` to the next cached one (or the window's end)."""
        stop = index + 1
        while stop < min(window_end, self._items) and stop not in self._cache:
            stop += 1
        items: list[tuple[bytes, int, int, float | None]]
        if self._tail is not None:
            # tail() was asked for one byte more than shown, to tell cut lines.
            items = [
                (data[:MAX_LINE_BYTES], UNKNOWN if len(data) > MAX_LINE_BYTES else 0, STDOUT, None)
                for data in self._tail[index:stop]
            ]
        else:
            lines = self._read_rows(range(index, stop))
            streams, times = self._line_meta(lines)
            items = [
                (ln.data, ln.length - len(ln.data), stream, when)
                for ln, stream, when in zip(lines, streams, times, strict=True)
            ]
        if self._styles is None:  # computing styles costs more than rendering a line
            base = self.rich_style
            self._styles = {
                STDOUT: base,
                STDERR: base + self.get_component_rich_style("transcript-view--stderr"),
                META: base + self.get_component_rich_style("transcript-view--meta"),
                -1: self.get_component_rich_style("transcript-view--cut"),
                -2: self.get_component_rich_style("transcript-view--match"),
            }
        styles = self._styles
        base, marker, match = styles[STDOUT], styles[-1], styles[-2]
        query = self._query
        console = self.app.console  # only to turn rich Text into segments
        first: _Rendered | None = None
        for number, (data, omitted, stream, when) in enumerate(items, index):
            style = styles.get(stream, base)
            text = line_text(data, omitted=omitted, style=style, marker_style=marker)
            if query is not None:
                for start, end in query.spans(text.plain):
                    text.stylize(match, start, end)
            rendered = (Strip(text.render(console), text.cell_len), style, when)
            self._cache.set(number, rendered)
            first = first or rendered
            if text.cell_len > self._max_width:
                self._max_width = text.cell_len
                if not self._width_pending:  # not from inside a render: after it
                    self._width_pending = True
                    self.call_later(self._update_virtual_size)
        return first or (Strip.blank(self.size.width, base), base, None)

    def _line_meta(self, lines: list[Line]) -> tuple[list[int], list[float | None]]:
        """Each line's stream and arrival time, from the sidecar (one read per run of
        consecutive lines)."""
        if self._sidecar is None or not lines:
            return [STDOUT] * len(lines), [None] * len(lines)
        streams: list[int] = []
        times: list[float | None] = []
        i = 0
        while i < len(lines):
            j = i + 1
            while j < len(lines) and lines[j].number == lines[j - 1].number + 1:
                j += 1
            run = lines[i:j]
            segments = read_segments(self._sidecar, run[0].offset, run[-1].offset + 1)
            offsets = [line.offset for line in run]
            streams += line_streams(offsets, segments)
            times += line_times(offsets, segments)
            i = j
        return streams, times


def _measure(data: bytes, omitted: int) -> int:
    """Cells a line takes as shown (what wrapping divides by the width)."""
    return line_text(data, omitted=omitted).cell_len


def _post_style(strip: Strip, style: Style) -> Strip:
    """`style` over the strip's own styles (its backgrounds included)."""
    return Strip(list(Segment.apply_style(iter(strip), post_style=style)), strip.cell_length)


def _file_id(path: Path) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_dev, st.st_ino
