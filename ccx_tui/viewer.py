"""`ccx-tui view`: one file or past session in a read-only view (no engine, no tabs)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.content import Content
from textual.widgets import Static

from ccx_tui.widgets import ui_process
from ccx_tui.widgets.help import HelpScreen
from ccx_tui.widgets.key_footer import KeyFooter
from ccx_tui.widgets.safe import LiteralToastsApp
from ccx_tui.widgets.transcript_panel import TranscriptPanel, search_status
from ccx_tui.widgets.transcript_view import TranscriptView

if TYPE_CHECKING:
    from ccx_tui.config import Settings


class ViewerApp(LiteralToastsApp):
    """`ccx-tui view`: one file or past session, read-only, following it as it grows."""

    CSS_PATH = "app.tcss"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("q", "quit", "Quit"),
        Binding("question_mark", "help", "Help"),
    ]

    def __init__(self, path: Path, title: str, *, wrap: bool = False) -> None:
        super().__init__()
        ui_process.tune()  # faster Strips, frames written as soon as made
        self.path = path
        self.title = title
        self.wrap = wrap
        self._search_note = ""

    def compose(self) -> ComposeResult:
        yield TranscriptPanel(
            self.path, title=self.path.name, follow=True, wrap=self.wrap, id="viewer"
        )
        yield Static(Content(self.title), id="viewer-title")
        yield KeyFooter()

    def on_mount(self) -> None:
        view = self.query_one(TranscriptView)
        view.focus()
        self.set_interval(0.25, view.refresh_source)
        self.set_interval(0.25, self._status)
        self._status()

    def _status(self) -> None:
        """Where we are: 'TITLE · line 120-155 of 2000000 · following'."""
        view = self.query_one(TranscriptView)
        total = view.line_count
        if view.showing_tail:
            where = "indexing…"
        elif view.filtering:
            where = f"only matching lines, of {total}"
        else:
            shown = view.visible_lines() or (-1, -1)
            where = f"line {shown[0] + 1}-{shown[1] + 1} of {total}"
        follow = "following" if view.following else f"↓ {view.new_lines} new (f to follow)"
        parts = [self.title, where, follow]
        if view.searcher is not None:
            parts.append(self._search_note)
        # Content, not markup: the title holds a command, the note a search query.
        self.query_one("#viewer-title", Static).update(Content(" · ".join(parts)))

    def on_transcript_view_search_changed(self, event: TranscriptView.SearchChanged) -> None:
        self._search_note = search_status(event)
        self._status()

    def action_help(self) -> None:
        self.push_screen(HelpScreen())


def resolve_view_target(settings: Settings, target: str) -> tuple[Path, str]:
    """A regular file, or a session id (prefix) in the data directory; and its title,
    control characters escaped.

    Raises TranscriptError for a path that is not a regular file (opening a FIFO would
    block for good), UnknownSession for no match, AmbiguousSession for several.
    """
    from ccx_tui.errors import TranscriptError
    from ccx_tui.textsafe import escape_controls

    path = Path(target).expanduser()
    if path.exists():
        if not path.is_file():  # stat: it does not block on a FIFO as open() would
            kind = "is a directory" if path.is_dir() else "not a regular file"
            raise TranscriptError(f"cannot view {path}: {kind}")
        return path, escape_controls(str(path))
    from ccx_tui.engine.sessions.session import resolve_id
    from ccx_tui.engine.transcripts.store import DataStore

    store = DataStore(settings.data_dir)
    history = {info.id: info for info in store.load_history(include_foreign=True)}
    info = history[resolve_id(target, history, what="file or session")]
    return info.transcript, escape_controls(f"{info.id} · {info.spec.command}")


def run_viewer(settings: Settings, target: str) -> int:
    path, title = resolve_view_target(settings, target)
    from ccx_tui.engine.transcripts.reader import TranscriptReader

    TranscriptReader(path).close()  # a clear error before the screen is taken over
    return ViewerApp(path, title, wrap=settings.wrap).run() or 0
