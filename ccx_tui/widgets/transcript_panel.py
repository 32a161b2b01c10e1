"""A transcript view with its search bar, and the keys that act on its text:
search, filter, copy, save, open in a pager."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import ClassVar

from textual import on, work
from textual.actions import SkipAction
from textual.app import ComposeResult, SuspendNotSupported
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.worker import get_current_worker

from ccx_tui.engine.transcripts.export import save_transcript
from ccx_tui.engine.transcripts.search import compile_query
from ccx_tui.errors import CcxError
from ccx_tui.widgets.dialogs import GotoLineDialog, SaveChoice, SaveDialog
from ccx_tui.widgets.safe import printable
from ccx_tui.widgets.search_bar import SearchBar
from ccx_tui.widgets.transcript_view import TranscriptView

LINE_ARGUMENT = frozenset(
    {"less", "more", "most", "vi", "vim", "nvim", "view", "nano", "emacs", "micro", "mg", "joe"}
)
"""Pagers and editors that open at line N given `+N`."""

BIG_COPY = 32 * 1024 * 1024
"""A transcript at least this big takes seconds to copy for the pager: say so first."""


def pager_command(path: Path, line: int | None, env: dict[str, str] | None = None) -> list[str]:
    """argv to open `path` at 1-based `line`: $PAGER, else $EDITOR, else `less`."""
    env = dict(os.environ) if env is None else env
    program = env.get("PAGER") or env.get("EDITOR") or "less"
    argv = shlex.split(program) or ["less"]
    if line is not None and os.path.basename(argv[0]) in LINE_ARGUMENT:
        argv.append(f"+{line}")
    return [*argv, str(path)]


def pager_shows_colour(argv: list[str]) -> bool:
    """Whether the pager is `less`, which given -R shows colour codes as colours (and
    keeps other sequences from the terminal): it gets the exact bytes, other pagers
    plain text."""
    return os.path.basename(argv[0]) == "less"


def with_colour(argv: list[str]) -> list[str]:
    """`less` argv with -R (once) after the program name."""
    return argv if "-R" in argv else [argv[0], "-R", *argv[1:]]


def default_save_name(title: str, filtered: bool) -> str:
    """A file name in the current directory from the tab title (just the name if the
    directory's path holds control characters: the dialog's input would show them raw,
    and a relative name is saved in the current directory all the same)."""
    stem = re.sub(r"[^A-Za-z0-9._-]+", "-", title).strip("-.") or "transcript"
    name = f"{stem}{'-filtered' if filtered else ''}.log"
    cwd = os.getcwd()
    return os.path.join(cwd, name) if printable(cwd) == cwd else name


class TranscriptPanel(Vertical):
    """`TranscriptView` plus the `/` bar; owns search, filter, copy, save and open."""

    BINDINGS: ClassVar[list[BindingType]] = [
        # A priority binding, run before the keys behind it are handed on: those typed
        # right after `/` (or pasted with it) go to the pattern once the bar is open,
        # not to the output, where `e` opens the pager.  In the pattern it is a `/`.
        Binding("slash", "search", "Search", priority=True),
        Binding("enter", "submit_search", "Go", show=False, priority=True),
        Binding("ampersand", "filter", "Filter", show=False),
        Binding("escape", "clear_search", "Clear search", show=False),
        Binding("y", "copy", "Copy", show=False),
        Binding("s", "save", "Save", show=False),
        Binding("e", "open_pager", "Pager", show=False),
        Binding("colon", "goto_line", "Go to line", show=False),
    ]

    DEFAULT_CSS = """
    TranscriptPanel {
        height: 1fr;
        TranscriptView { height: 1fr; }
    }
    """

    def __init__(
        self,
        path: Path,
        *,
        title: str = "transcript",
        follow: bool = True,
        wrap: bool = False,
        name: str | None = None,
        id: str | None = None,
        classes: str | None = None,
    ) -> None:
        """Raises `TranscriptError` if `path` cannot be opened."""
        super().__init__(name=name, id=id, classes=classes)
        self.title = title
        self._view = TranscriptView(path, follow=follow, wrap=wrap)
        # Mounted when first opened: most tabs are never searched, and its five
        # widgets were two thirds of a tab's memory (with 100 tabs, 20 MB).
        self._bar: SearchBar | None = None

    def compose(self) -> ComposeResult:
        yield self._view

    @property
    def view(self) -> TranscriptView:
        return self._view

    # -- search -------------------------------------------------------------------------

    @on(SearchBar.Changed)
    def _pattern_changed(self, event: SearchBar.Changed) -> None:
        self._run_search(event.text)

    def _run_search(self, text: str) -> None:
        """Search `text` with the bar's options, or show why it cannot be searched."""
        bar = self._bar
        if bar is None:  # never: only the bar's messages and keys lead here
            return
        if not text:
            bar.error = ""
            self._view.search(None)
            return
        try:
            query = compile_query(text, case=bar.case, regex=bar.regex)
            self._view.search(query)
        except CcxError as exc:
            bar.error = f"✘ {exc}"
            return
        bar.error = ""
        if bar.filter:
            self._view.set_filter(True)

    def action_submit_search(self) -> None:
        """Enter in the bar: search what was typed, go to the first match on or below
        the top of the screen, and give the output the keyboard.

        A priority binding, so it all happens before the next key is handled: an `n`
        typed right after Enter steps to the next match instead of joining the pattern.
        """
        bar = self._bar
        if bar is None or not bar.editing:
            raise SkipAction()
        if bar.take_pending():
            self._run_search(bar.text)
        self.screen.set_focus(self._view)
        if self._view.searcher is not None and not bar.error:
            self._view.cursor_line = None  # from the top of the screen
            self._view.goto_match(1)

    @on(SearchBar.Cancelled)
    def _cancelled(self) -> None:
        self.action_clear_search()

    @on(SearchBar.FilterToggled)
    def _filter_toggled(self, event: SearchBar.FilterToggled) -> None:
        if not self._view.set_filter(event.on):
            event.bar.filter = False

    @on(TranscriptView.SearchChanged)
    def _search_changed(self, event: TranscriptView.SearchChanged) -> None:
        if self._bar is not None:
            self._bar.status = search_status(event)

    async def action_search(self) -> None:
        if self._bar is not None and self._bar.editing:
            raise SkipAction()  # a `/` in the pattern
        if self._bar is None:
            self._bar = SearchBar()
            await self.mount(self._bar)
        self._bar.open()

    def action_clear_search(self) -> None:
        bar = self._bar
        if (bar is None or not bar.has_class("shown")) and self._view.searcher is None:
            return
        if bar is not None:
            bar.close()
            bar.filter = False
        self._view.search(None)
        self._view.cursor_line = None
        self.screen.set_focus(self._view)  # now: the next key is for the output

    def action_filter(self) -> None:
        view = self._view
        if view.searcher is None:
            self.notify("search first (/), then & shows only the matching lines")
            return
        view.set_filter(not view.filtering)
        if self._bar is not None:
            self._bar.filter = view.filtering

    def action_goto_line(self) -> None:
        view = self._view
        if view.showing_tail or not view.line_count:
            self.notify("line numbers are not known yet: indexing…", severity="warning")
            return

        def chosen(line: int | None) -> None:
            if line is not None:
                view.goto_line(line)
                view.screen.set_focus(view)

        self.app.push_screen(GotoLineDialog(view.line_count), chosen)

    # -- copy, save, open ---------------------------------------------------------------

    def action_copy(self) -> None:
        """Copy the mouse selection, else the cursor's (or the last shown) line."""
        selected = self.screen.get_selected_text()
        if selected:
            self.app.copy_to_clipboard(selected)
            self.notify(f"copied the selection ({len(selected)} characters)")
            return
        number = self._view.current_line()
        text = self._view.line_plain(number) if number is not None else None
        if number is None or text is None:
            self.notify("nothing to copy yet", severity="warning")
            return
        self.app.copy_to_clipboard(text)
        self.notify(f"copied line {number + 1} ({len(text)} characters)")

    def action_save(self) -> None:
        view = self._view
        searcher = view.searcher if view.filtering else None
        what = f"{searcher.total:,} matching lines" if searcher else "the transcript"

        def chosen(choice: SaveChoice | None) -> None:
            if choice is not None:
                lines = list(searcher.matches) if searcher is not None else None
                self._save(choice.path, lines, choice.plain)

        default = default_save_name(self.title, bool(searcher))
        self.app.push_screen(SaveDialog(what, default), chosen)

    @work(thread=True, group="save", exit_on_error=False)
    def _save(self, path: Path, lines: list[int] | None, plain: bool) -> None:
        try:
            size = save_transcript(self._view.path, path, lines=lines, plain=plain)
        except CcxError as exc:
            self.app.call_from_thread(self.notify, f"not saved: {exc}", severity="error")
            return
        what = f"{len(lines):,} lines" if lines is not None else "transcript"
        how = " as plain text" if plain else ""
        self.app.call_from_thread(self.notify, f"saved {what}{how} ({size:,} bytes) to {path}")

    def action_open_pager(self) -> None:
        """Open the transcript (or the filtered lines) in $PAGER/$EDITOR, suspended.

        `less` gets the exact bytes with -R, so it shows the colours; any other pager
        gets a plain-text copy (a temporary file, made in a thread and removed after),
        since it would show the codes as they are.  The filtered lines are a copy too.
        """
        view = self._view
        line = view.current_line()
        argv = pager_command(view.path, None)
        colour = pager_shows_colour(argv)
        searcher = view.searcher if view.filtering else None
        lines = list(searcher.matches) if searcher is not None else None
        if lines is None and colour:
            at = None if line is None else line + 1
            self._run_pager(with_colour(pager_command(view.path, at)))
        elif shutil.which(argv[0]) is None:  # before copying what it cannot show
            self.notify(f"cannot run {argv[0]!r}: not found (set $PAGER)", severity="error")
        else:
            if lines is None and _size(view.path) >= BIG_COPY:
                self.notify("copying the transcript as plain text for the pager…")
            # A plain copy of the whole transcript keeps its line numbers.
            self._page_copy(lines, plain=not colour, line=line if lines is None else None)

    @work(thread=True, group="pager", exclusive=True, exit_on_error=False)
    def _page_copy(self, lines: list[int] | None, *, plain: bool, line: int | None) -> None:
        """Copy the transcript (or its `lines`) to a temporary file, plain or exact, and
        page that; the file is removed once the pager is done (or the copy fails or is
        cancelled)."""
        worker = get_current_worker()
        temp: Path | None = None
        try:
            fd, name = tempfile.mkstemp(prefix="ccx-page-", suffix=".txt" if plain else ".log")
            os.close(fd)
            temp = Path(name)
            save_transcript(
                self._view.path,
                temp,
                lines=lines,
                plain=plain,
                cancelled=lambda: worker.is_cancelled,
            )
            argv = pager_command(temp, None if line is None else line + 1)
            if not plain:
                argv = with_colour(argv)
            if not worker.is_cancelled:
                self.app.call_from_thread(self._run_pager, argv)
        except (OSError, CcxError) as exc:
            if not worker.is_cancelled:
                self.app.call_from_thread(
                    self.notify, f"cannot open a pager: {exc}", severity="error"
                )
        finally:
            if temp is not None:
                temp.unlink(missing_ok=True)

    def _run_pager(self, argv: list[str]) -> None:
        """Run the pager with the app suspended; say why if it cannot run."""
        try:
            with self.app.suspend():
                done = subprocess.run(argv, check=False)
            if done.returncode not in (0, None):
                self.notify(f"{argv[0]} exited with {done.returncode}", severity="warning")
        except SuspendNotSupported:
            self.notify("cannot suspend the app in this terminal", severity="error")
        except FileNotFoundError:
            self.notify(f"cannot run {argv[0]!r}: not found (set $PAGER)", severity="error")
        except OSError as exc:
            self.notify(f"cannot open a pager: {exc}", severity="error")
        self.refresh(layout=True)


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def search_status(event: TranscriptView.SearchChanged) -> str:
    """'match 3/120', '120 matches', 'searching… 40 so far', 'no matches'."""
    total = f"{event.total:,}" + ("+" if event.capped else "")
    if event.scanning:
        where = f"match {event.index:,}/" if event.index is not None else ""
        return f"{where}{total} so far, searching…"
    if not event.total:
        return "no matches"
    if event.index is not None:
        return f"match {event.index:,}/{total}"
    return f"{total} matching line" + ("" if event.total == 1 else "s")
