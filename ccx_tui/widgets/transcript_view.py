"""A scrolling view of one transcript (or any text file) of any size, following new output."""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import ClassVar

from rich.segment import Segment
from rich.style import Style
from textual import on, work
from textual.binding import Binding, BindingType
from textual.cache import LRUCache
from textual.events import Resize
from textual.geometry import Size
from textual.message import Message
from textual.reactive import reactive, var
from textual.scroll_view import ScrollView
from textual.strip import Strip
from textual.timer import Timer
from textual.worker import get_current_worker

from ccx_tui.engine.reader import MAX_LINE_BYTES, TranscriptReader
from ccx_tui.engine.transcript import (
    META,
    SIDECAR_NAME,
    STDERR,
    STDOUT,
    TRANSCRIPT_NAME,
    read_segments,
)
from ccx_tui.widgets.ansi import UNKNOWN, line_streams, line_text

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
HSCROLL = 4

_Rendered = tuple[Strip, Style]  # the uncropped line, and the style to pad it with


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
        Binding("pageup", "page(-1)", "Page up", show=False),
        Binding("pagedown", "page(1)", "Page down", show=False),
        Binding("left", f"scroll_by({-HSCROLL}, 0)", "Left", show=False),
        Binding("right", f"scroll_by({HSCROLL}, 0)", "Right", show=False),
        Binding("g,home", "top", "Top", show=False),
        Binding("G,end", "follow", "Bottom", show=False),
        Binding("f", "follow", "Follow"),
    ]

    COMPONENT_CLASSES: ClassVar[set[str]] = {
        "transcript-view--stderr",
        "transcript-view--meta",
        "transcript-view--cut",
        "transcript-view--gutter",
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
    }
    """

    following: var[bool] = var(True, init=False)
    """True while new output keeps the view at the bottom."""
    new_lines: var[int] = var(0, init=False)
    """Lines that arrived since following stopped (0 while following)."""
    show_line_numbers: reactive[bool] = reactive(False)
    """Show a gutter with 1-based line numbers."""

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

    class _Indexed(Message, bubble=False):
        """From the indexing worker: more of the file is indexed (`done`: pass over)."""

        def __init__(self, done: bool) -> None:
            super().__init__()
            self.done = done

        def can_replace(self, message: Message) -> bool:
            return isinstance(message, TranscriptView._Indexed)

    def __init__(
        self,
        path: Path,
        *,
        follow: bool = True,
        name: str | None = None,
        id: str | None = None,
        classes: str | None = None,
    ) -> None:
        """Open `path` (raises `TranscriptError` if it cannot be opened).

        Args:
            path: The file to show; `chunks.bin` beside a `transcript.log` gives streams.
            follow: Start following new output.
            name: The name of the widget.
            id: The ID of the widget in the DOM.
            classes: The CSS classes of the widget.
        """
        super().__init__(name=name, id=id, classes=classes)
        self.path = Path(path)
        self._reader = TranscriptReader(self.path)
        side = self.path.with_name(SIDECAR_NAME)
        self._sidecar = side if self.path.name == TRANSCRIPT_NAME else None
        self._cache: LRUCache[int, _Rendered] = LRUCache(CACHE_LINES)
        self._tail: list[bytes] | None = None  # shown until the first index pass ends
        self._line_count = 0  # lines shown: a snapshot, so a frame sees one count
        self._indexed_size = 0
        self._max_width = 0
        self._width_pending = False
        self._timer: Timer | None = None
        self._wanted = False  # refresh_source called; start a pass on the next tick
        self._lock = threading.Lock()  # guards the two flags below
        self._indexing = False  # a worker may be using the reader
        self._closed = False
        self._file_id = _file_id(self.path)  # to notice the file being replaced (rotated)
        self._restarted = False  # set by the worker: the reader started over
        self._first_pass = False
        self._styles: dict[int, Style] | None = None  # by stream; -1: the cut marker
        self.set_reactive(TranscriptView.following, follow)

    def on_mount(self) -> None:
        self._timer = self.set_interval(FRAME, self._tick, pause=True)
        self._reader.refresh(SYNC_INDEX_BYTES)  # small and page-cached: cheap
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
        with self._lock:
            self._closed = True
            if not self._indexing:
                self._reader.close()  # else the worker closes it when it stops

    def on_resize(self, event: Resize) -> None:
        if self.following:
            self._scroll_bottom()

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
        if self._tail is None:
            self._sync(quiet=first_pass)
        elif message.done:
            self._leave_tail()

    def action_scroll_by(self, x: int, y: int) -> None:
        self.scroll_relative(x=x, y=y, animate=False)

    def action_page(self, pages: int) -> None:
        self.scroll_relative(y=pages * self.scrollable_content_region.height, animate=False)

    def action_top(self) -> None:
        self.scroll_home(animate=False)

    def action_follow(self) -> None:
        """Follow new output again and jump to the bottom."""
        if self.following:
            self._scroll_bottom()
        else:
            self.following = True

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
    def cached_lines(self) -> int:
        """Rendered lines held in memory (at most `CACHE_LINES`)."""
        return len(self._cache)

    def refresh_source(self) -> None:
        """Pick up data appended to the file (call on new output; cheap and coalesced).

        Indexing runs in a worker thread; at most one pass runs at a time and calls
        arriving meanwhile start a single further pass, at most one per frame.
        """
        if self._closed:
            return
        self._wanted = True
        if self._timer is not None:
            self._timer.resume()

    def render_line(self, y: int) -> Strip:
        scroll_x, scroll_y = self.scroll_offset
        index = scroll_y + y
        width = self.scrollable_content_region.width
        if index >= self._rows or self._closed:
            return Strip.blank(width, self.rich_style)
        rendered = self._cache.get(index)
        if rendered is None:
            rendered = self._load_window(index, scroll_y + self.scrollable_content_region.height)
        strip, pad = rendered
        gutter = self._gutter_width
        body = strip.crop_extend(scroll_x, scroll_x + width - gutter, pad)
        if not gutter:
            return body
        number = "" if self._tail is not None else str(index + 1)
        style = self.get_component_rich_style("transcript-view--gutter")
        return Strip.join([Strip([Segment(f"{number:>{gutter - 1}} ", style)], gutter), body])

    def notify_style_update(self) -> None:
        super().notify_style_update()
        self._styles = None
        self._cache.clear()

    # -- internals ----------------------------------------------------------------------

    @property
    def _rows(self) -> int:
        return len(self._tail) if self._tail is not None else self._line_count

    @property
    def _gutter_width(self) -> int:
        return len(str(max(self._rows, 1))) + 1 if self.show_line_numbers else 0

    def _post_follow(self) -> None:
        self.post_message(self.FollowChanged(self, self.following, self.new_lines))

    def _scroll_bottom(self) -> None:
        self.scroll_end(animate=False, immediate=True, x_axis=False, force=True)

    def _stick_to_bottom(self) -> None:
        if self.following and round(self.scroll_y) != self.max_scroll_y:
            self._scroll_bottom()

    def _update_virtual_size(self) -> None:
        self._width_pending = False
        self.virtual_size = Size(self._max_width + self._gutter_width, self._rows)

    def _tick(self) -> None:
        if self._indexing:
            return
        if self._wanted:
            self._wanted = False
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
        else:
            self._cache.discard(old_count - 1)  # the last line may have been partial
            added = count - old_count
        self._line_count, self._indexed_size = count, size
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
        if not self.following:
            self.scroll_to(y=max(self.max_scroll_y - from_bottom, 0), animate=False)

    def _load_window(self, index: int, window_end: int) -> _Rendered:
        """Render lines from `index` to the next cached one (or the window's end)."""
        stop = index + 1
        while stop < min(window_end, self._rows) and stop not in self._cache:
            stop += 1
        if self._tail is not None:
            # tail() was asked for one byte more than shown, to tell cut lines.
            items = [
                (data[:MAX_LINE_BYTES], UNKNOWN if len(data) > MAX_LINE_BYTES else 0, STDOUT)
                for data in self._tail[index:stop]
            ]
        else:
            lines = self._reader.lines(index, stop, MAX_LINE_BYTES)
            streams = [STDOUT] * len(lines)
            if self._sidecar is not None and lines:
                segments = read_segments(self._sidecar, lines[0].offset, lines[-1].offset + 1)
                streams = line_streams([line.offset for line in lines], segments)
            pairs = zip(lines, streams, strict=True)
            items = [(ln.data, ln.length - len(ln.data), s) for ln, s in pairs]
        if self._styles is None:  # computing styles costs more than rendering a line
            base = self.rich_style
            self._styles = {
                STDOUT: base,
                STDERR: base + self.get_component_rich_style("transcript-view--stderr"),
                META: base + self.get_component_rich_style("transcript-view--meta"),
                -1: self.get_component_rich_style("transcript-view--cut"),
            }
        styles = self._styles
        base, marker = styles[STDOUT], styles[-1]
        console = self.app.console  # only to turn rich Text into segments
        first: _Rendered | None = None
        for number, (data, omitted, stream) in enumerate(items, index):
            style = styles.get(stream, base)
            text = line_text(data, omitted=omitted, style=style, marker_style=marker)
            rendered = (Strip(text.render(console), text.cell_len), style)
            self._cache.set(number, rendered)
            first = first or rendered
            if text.cell_len > self._max_width:
                self._max_width = text.cell_len
                if not self._width_pending:  # not from inside a render: after it
                    self._width_pending = True
                    self.call_later(self._update_virtual_size)
        return first or (Strip.blank(self.size.width, base), base)


def _file_id(path: Path) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_dev, st.st_ino
