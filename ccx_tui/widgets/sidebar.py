"""The sidebar: the engine's live count against its limit, and a row per session."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import VerticalScroll
from textual.geometry import Region
from textual.reactive import reactive
from textual.widgets import Static

from ccx_tui.engine.sessions.local import EngineStats
from ccx_tui.engine.sessions.session import SessionInfo, State
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


def session_row(info: SessionInfo, now: float, usage: TreeUsage | None, selected: bool) -> Text:
    """A session's lines.  Its title, server and write error are untrusted text: Text
    takes them literally, `printable` keeps each on its line."""
    icon, colour = state_icon(info)
    text = Text(no_wrap=True, overflow="ellipsis")
    text.append("›" if selected else " ", style="bold")
    text.append(f"{icon} ", style=_COLOURS.get(colour, ""))
    text.append(printable(info.spec.title), style="bold" if selected else "")
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

    stats: reactive[EngineStats | None] = reactive(None)
    """Live, paused and queued counts against the limit."""
    sessions: reactive[tuple[SessionInfo, ...]] = reactive(())
    """Every session to show, in tab order."""
    usage: reactive[dict[str, TreeUsage]] = reactive(dict, always_update=True)
    """CPU and memory per live session id."""
    now: reactive[float] = reactive(0.0)
    """The clock used for elapsed time and TTLs (set by the app once a second)."""
    selected: reactive[str | None] = reactive(None)
    """The id of the session shown in the main view."""
    servers: reactive[tuple[tuple[str, str], ...]] = reactive(())
    """(name, status) of remote servers, if any."""

    def __init__(
        self, *, name: str | None = None, id: str | None = None, classes: str | None = None
    ) -> None:
        super().__init__(name=name, id=id, classes=classes)
        self.can_focus = False
        self._pending = False
        self._mark: tuple[int, int] | None = None  # where the selected row was put

    def compose(self) -> ComposeResult:
        yield Static(id="limits")
        yield Static(id="rows")

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
        self.query_one("#limits", Static).update(limits)
        rows = Text()
        if not self.sessions:
            rows.append("no sessions yet", style="bright_black")
        mark: tuple[int, int] | None = None  # the selected row's first line and height
        for i, info in enumerate(self.sessions):
            if i:
                rows.append("\n\n")
            selected = info.id == self.selected
            row = session_row(info, self.now, self.usage.get(info.id), selected)
            if selected:
                mark = (rows.plain.count("\n"), row.plain.count("\n") + 1)
            rows.append_text(row)
        rows_widget = self.query_one("#rows", Static)
        rows_widget.update(rows)
        if mark is not None and mark != self._mark:
            self._mark = mark
            # Once laid out: the selected session in view, however many there are.
            self.call_after_refresh(self._scroll_to_row, rows_widget, *mark)

    def _scroll_to_row(self, rows_widget: Static, line: int, height: int) -> None:
        top = rows_widget.virtual_region.y + line
        self.scroll_to_region(Region(0, top, 1, height), animate=False, immediate=True)
