"""The sidebar: the engine's live count against its limit, and a row per session."""

from __future__ import annotations

from bisect import bisect_right

from rich.cells import cell_len
from rich.text import Text
from textual.app import ComposeResult
from textual.containers import VerticalScroll
from textual.geometry import Region, Size
from textual.reactive import reactive
from textual.strip import Strip
from textual.visual import Visual, visualize
from textual.widgets import Static

from ccx_tui.engine.sessions.local import EngineStats
from ccx_tui.engine.sessions.session import SessionInfo, SessionSpec, State
from ccx_tui.engine.sessions.usage import TreeUsage
from ccx_tui.widgets.safe import printable
from ccx_tui.widgets.status import (
    duration,
    restart_badge,
    restart_note,
    size,
    state_icon,
    state_label,
)

BAR_WIDTH = 10
_COLOURS = {
    "$success": "green",
    "$warning": "yellow",
    "$error": "red",
    "$secondary": "magenta",
    "$text-muted": "bright_black",
}


def ttl_bar(remaining: float, total: float, width: int = BAR_WIDTH) -> str:
    """A bar that empties as the TTL runs out."""
    filled = 0 if total <= 0 else round(width * max(0.0, min(1.0, remaining / total)))
    return "█" * filled + "░" * (width - filled)


def session_row(
    info: SessionInfo,
    now: float,
    usage: TreeUsage | None,
    selected: bool,
    title: str | None = None,
) -> Text:
    """A session's lines.  Its title, server and write error are untrusted text: Text
    takes them literally, `printable` keeps each on its line.  `title` is
    `printable(info.spec.title)`, if the caller has it already."""
    icon, colour = state_icon(info)
    text = Text(no_wrap=True, overflow="ellipsis")
    text.append("›" if selected else " ", style="bold")
    text.append(f"{icon} ", style=_COLOURS.get(colour, ""))
    if title is None:
        title = printable(info.spec.title)
    text.append(title, style="bold" if selected else "")
    text.append("\n   ")
    text.append(state_label(info, now), style=_COLOURS.get(colour, ""))
    if badge := restart_badge(info):
        text.append(f" {badge}", style="yellow")
    if info.started_at is not None:
        text.append(f"  {duration(info.elapsed(now))}", style="bright_black")
    if info.location != "local":
        text.append(f"  @{printable(info.location)}", style="cyan")
    if info.state is State.QUEUED and info.reason and info.reason.startswith("waiting for "):
        text.append(f"\n   {printable(info.reason)}", style="yellow")  # its dependencies
    elif info.spec.ready_when and info.state.live and info.ready_at is None:
        ((kind, probe),) = info.spec.ready_when.items()
        text.append(f"\n   not ready yet ({kind} {printable(probe)})", style="yellow")
    if note := restart_note(info, now):
        text.append(f"\n   {note}", style="red" if info.restart_at is None else "yellow")
    remaining = info.ttl_remaining(now)
    if remaining is not None and info.spec.ttl:
        text.append("\n   ttl ")
        urgent = remaining < min(60.0, info.spec.ttl * 0.2)
        text.append(ttl_bar(remaining, info.spec.ttl), style="red" if urgent else "cyan")
        text.append(f" {duration(remaining)}", style="red" if urgent else "")
    if usage is not None and info.state.live:
        text.append(f"\n   cpu {usage.cpu:.0f}%  mem {size(usage.rss)}", style="bright_black")
    if info.write_error:
        error = printable(info.write_error)
        text.append(f"\n   ⚠ {error}; {size(info.bytes_lost)} lost", style="red")
    return text


class SessionRows(Static):
    """The sessions' rows, a blank line between two, drawn only where they are seen.

    A Static draws all of its text on every change: with 100 sessions, 300 lines every
    second (elapsed times move on) and on every tab switch (the mark moves), for the
    dozen rows on screen.  Here each row is drawn on its own, when it is on screen, and
    kept until it changes; `visual` is still the whole text (for whoever reads it).
    """

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self._rows: list[Text] = []
        self._width = -1  # the width `_starts` and `_drawn` are for
        self._starts: list[int] = []  # each row's first line, and the total at the end
        self._heights: list[int] = []  # each row's lines, as last measured
        self._drawn: dict[int, list[Strip]] = {}  # row -> its lines, as last drawn
        self._whole: Visual | None = None

    @property
    def visual(self) -> Visual:
        """All the rows as one text, as a Static holding them would have it."""
        if self._whole is None:
            self._whole = visualize(self, _joined(self._rows))
        return self._whole

    def set_rows(self, rows: list[Text]) -> None:
        """Show `rows`; only rows that changed are drawn again, and the screen is laid
        out again only if the rows' height changed."""
        old = self._rows
        if rows == old:
            return
        self._rows = rows
        self._whole = None
        width = self._width
        # A row not drawn again is the same object (a Text compares by value: slower).
        changed = [
            i
            for i, row in enumerate(rows)
            if i >= len(old) or (old[i] is not row and old[i] != row)
        ]
        for i in list(self._drawn):
            if i >= len(rows) or i in changed:  # (-1, the blank line, stays)
                del self._drawn[i]
        old_starts = self._starts
        self._measure(width, changed)
        if self._starts != old_starts or width < 0:
            self.refresh(layout=True)
            return
        for i in changed:  # the same lines: repaint only the rows that changed
            start = self._starts[i]
            self.refresh(Region(0, start, max(width, 1), self._starts[i + 1] - start))

    def row_span(self, index: int) -> tuple[int, int]:
        """(first line, lines) of row `index`, as last laid out."""
        if index + 1 >= len(self._starts):
            return 0, 1
        start = self._starts[index]
        return start, self._starts[index + 1] - start - (index + 1 < len(self._rows))

    def get_content_height(self, container: Size, viewport: Size, width: int) -> int:
        if width != self._width:
            self._drawn.clear()
            self._measure(width)
        return self._starts[-1] if self._starts else 0

    def render_line(self, y: int) -> Strip:
        width = self.size.width
        if width != self._width:
            self._drawn.clear()
            self._measure(width)
        index = bisect_right(self._starts, y) - 1
        if 0 <= index < len(self._rows):
            lines = self._draw(index)
            line = y - self._starts[index]
            if line < len(lines):
                return lines[line]
        return self._blank()  # between two rows

    def notify_style_update(self) -> None:
        super().notify_style_update()
        self._drawn.clear()  # drawn in the old colours

    def _blank(self) -> Strip:
        """The line between two rows, as a Static draws an empty line."""
        lines = self._drawn.get(-1)
        if lines is None:
            visual = visualize(self, Text(""))
            lines = Visual.to_strips(self, visual, max(self._width, 1), None, self.visual_style)
            self._drawn[-1] = lines
        return lines[0] if lines else Strip.blank(self._width, self.visual_style.rich_style)

    def _measure(self, width: int, changed: list[int] | None = None) -> None:
        """Each row's first line at `width` (a row whose lines all fit is as many
        lines high as it has; only one that wraps is drawn to tell).  Only the rows
        `changed` are measured again; all of them if `changed` is None, or the width
        or the number of rows is not what was measured last."""
        rows, heights = self._rows, self._heights
        if changed is None or width != self._width or len(heights) != len(rows):
            changed = list(range(len(rows)))
            heights = self._heights = [0] * len(rows)
        self._width = width
        for i in changed:
            row = rows[i]
            # Not laid out yet (no width): a guess, corrected once it is.
            fits = width <= 0 or _fits(row, width)
            heights[i] = row.plain.count("\n") + 1 if fits else len(self._draw(i))
        starts, line = [], 0
        for height in heights:
            starts.append(line)
            line += height + 1  # and the blank line under it
        starts.append(line - 1 if heights else 0)  # (none under the last row)
        self._starts = starts

    def _draw(self, index: int) -> list[Strip]:
        lines = self._drawn.get(index)
        if lines is None:
            visual = visualize(self, self._rows[index])
            width = max(self._width, 1)
            lines = Visual.to_strips(self, visual, width, None, self.visual_style)
            self._drawn[index] = lines
        return lines


def _joined(rows: list[Text]) -> Text:
    whole = Text()
    for i, row in enumerate(rows):
        if i:
            whole.append("\n\n")
        whole.append_text(row)
    return whole


def _fits(text: Text, width: int) -> bool:
    """Whether every line of `text` fits in `width` cells (none wraps)."""
    return width > 0 and all(cell_len(line) <= width for line in text.plain.split("\n"))


class Sidebar(VerticalScroll):
    """Limits and sessions at a glance; the app feeds it data, it only renders."""

    DEFAULT_CSS = """
    Sidebar {
        width: 36;
        dock: right;
        border-left: vkey $foreground 20%;
        padding: 0 1;
        background: $surface;
        #limits {
            padding-bottom: 1;
            border-bottom: hkey $foreground 20%;
            margin-bottom: 1;
        }
        .row { margin-bottom: 1; }
    }
    """

    # The sidebar draws none of these itself (its limits and rows repaint what changed
    # in them), so most do not repaint it as a whole (a reactive's default): a tab
    # switch (`selected`) repaints two rows, not the sidebar, its scrollbar and every
    # row in sight, and the clock only the rows it changed.  `sessions` still does:
    # without it, a tmux test saw a session's new state in its row a frame after the
    # pane's status line showed it (measured before `show_now`; kept, as tested).
    stats: reactive[EngineStats | None] = reactive(None, repaint=False)
    """Live, paused and queued counts against the limit."""
    sessions: reactive[tuple[SessionInfo, ...]] = reactive(())
    """Every session to show, in tab order."""
    usage: reactive[dict[str, TreeUsage]] = reactive(dict, always_update=True, repaint=False)
    """CPU and memory per live session id."""
    now: reactive[float] = reactive(0.0, repaint=False)
    """The clock used for elapsed time and TTLs (set by the app once a second)."""
    selected: reactive[str | None] = reactive(None, repaint=False)
    """The id of the session shown in the main view."""
    servers: reactive[tuple[tuple[str, str], ...]] = reactive((), repaint=False)
    """(name, status) of remote servers, if any."""

    def __init__(
        self, *, name: str | None = None, id: str | None = None, classes: str | None = None
    ) -> None:
        super().__init__(name=name, id=id, classes=classes)
        self.can_focus = False
        self._pending = False
        self._mark: tuple[int, int] | None = None  # where the selected row was put
        # Held, never queried; and what they last showed, so that an unchanged text is
        # not drawn again and a changed one lays the screen out only if its height did.
        self._limits = Static(id="limits")
        self._rows = SessionRows(id="rows")
        self._shown: dict[Static, Text] = {}
        self._titles: dict[str, tuple[SessionSpec, str]] = {}  # by session id
        # Each session's row as last drawn, with what it was drawn from.
        self._drawn_rows: dict[str, tuple[SessionInfo, TreeUsage | None, float, bool, Text]] = {}

    def compose(self) -> ComposeResult:
        yield self._limits
        yield self._rows

    def on_mount(self) -> None:
        self._show()  # `is_mounted` turns true only after this handler

    def watch_stats(self) -> None:
        self._schedule()

    def watch_sessions(self) -> None:
        self._schedule()

    def watch_usage(self) -> None:
        self._schedule()

    def watch_now(self) -> None:
        self._schedule()

    def watch_selected(self) -> None:
        self._schedule()

    def watch_servers(self) -> None:
        self._schedule()

    def _schedule(self) -> None:
        # The app sets several of these at once: render once for all of them.
        if self.is_mounted and not self._pending:
            self._pending = True
            self.call_later(self._render_all)

    def _render_all(self) -> None:
        if self._pending:  # not drawn by `show_now` meanwhile
            self.show_now()

    def show_now(self) -> None:
        """Draw what the fields say now, not once the messages queued before are
        handled: the app calls it when a session changed, so that its row changes
        with its pane's status line (in the same step, so in the same frame)."""
        self._pending = False
        if self.is_mounted:
            self._show()

    def _show(self) -> None:
        limits = Text(no_wrap=True)
        stats = self.stats
        if stats is not None:
            limits.append("running ", style="bold")
            limits.append(
                f"{stats.live}/{stats.max_sessions}",
                style="bold red" if stats.live >= stats.max_sessions else "bold green",
            )
            limits.append(f", queued {stats.queued}")
            if stats.paused:
                limits.append(f", paused {stats.paused}")
        for name, status in self.servers:
            limits.append(f"\n{printable(name)}: {printable(status)}", style="cyan")
        self._put(self._limits, limits)
        rows: list[Text] = []
        if not self.sessions:
            rows.append(Text("no sessions yet", style="bright_black"))
        selected_row: int | None = None
        now, drawn, kept = self.now, self._drawn_rows, {}
        for i, info in enumerate(self.sessions):
            selected = info.id == self.selected
            usage = self.usage.get(info.id)
            old = drawn.get(info.id)
            # A tab switch moves the mark: the other rows are the ones drawn before.
            if (
                old is not None
                and old[0] is info
                and old[1] is usage
                and old[2:4]
                == (
                    now,
                    selected,
                )
            ):
                row = old[4]
            else:
                row = session_row(info, now, usage, selected, self._title(info))
            kept[info.id] = (info, usage, now, selected, row)
            rows.append(row)
            if selected:
                selected_row = i
        self._drawn_rows = kept  # closed tabs' rows go
        if len(self._titles) > len(self.sessions):  # closed tabs: forget their titles
            shown = {info.id for info in self.sessions}
            self._titles = {k: v for k, v in self._titles.items() if k in shown}
        self._rows.set_rows(rows)
        mark = None if selected_row is None else self._rows.row_span(selected_row)
        if mark is not None and mark != self._mark:
            self._mark = mark
            # Once laid out: the selected session in view, however many there are.
            self.call_after_refresh(self._scroll_to_row, mark)

    def _title(self, info: SessionInfo) -> str:
        """The session's title, shown safely; worked out (a shell parse of its
        command) once per spec, not for every session every second."""
        known = self._titles.get(info.id)
        if known is not None and known[0] is info.spec:
            return known[1]
        title = printable(info.spec.title)
        self._titles[info.id] = (info.spec, title)
        return title

    def _put(self, widget: Static, text: Text) -> None:
        """Show `text` in `widget`, if it differs from what it shows."""
        old = self._shown.get(widget)
        if old is not None and old == text:
            return
        self._shown[widget] = text
        width = widget.content_region.width
        same_height = (
            old is not None
            and old.plain.count("\n") == text.plain.count("\n")
            and _fits(old, width)
            and _fits(text, width)  # no line wraps: as many lines on screen as before
        )
        widget.update(text, layout=not same_height)

    def _scroll_to_row(self, mark: tuple[int, int]) -> None:
        line, height = mark
        top = self._rows.virtual_region.y + line
        self.scroll_to_region(Region(0, top, 1, height), animate=False, immediate=True)
