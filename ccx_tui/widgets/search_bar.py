"""The `/` bar under a transcript: a pattern, its options, and how many lines match."""

from __future__ import annotations

from typing import ClassVar

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal
from textual.message import Message
from textual.reactive import reactive
from textual.timer import Timer
from textual.widgets import Input, Static

from ccx_tui.widgets.safe import plain

DEBOUNCE = 0.15
"""Seconds of no typing before the pattern is searched (each search rescans the file)."""


class SearchBar(Horizontal):
    """Edits the search; its parent runs it and sets `status` (or `error`)."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "cancel", "Cancel search"),
        Binding("ctrl+t", "toggle_case", "Case"),
        Binding("ctrl+r", "toggle_regex", "Regex"),
        Binding("ctrl+f", "toggle_filter", "Filter"),
    ]

    DEFAULT_CSS = """
    SearchBar {
        height: 1;
        background: $panel;
        display: none;
        &.shown { display: block; }
        #slash { width: 2; padding-left: 1; color: $accent; text-style: bold; }
        Input {
            width: 1fr;
            height: 1;
            border: none;
            padding: 0;
            background: $panel;
            &:focus { border: none; background-tint: $foreground 5%; }
        }
        #options { width: auto; color: $text-muted; padding: 0 1; }
        #search-status { width: auto; max-width: 50%; padding: 0 1; color: $text-muted; }
        #search-status.error { color: $error; text-style: bold; }
    }
    """

    case: reactive[bool | None] = reactive(None)
    """True: match case; False: ignore it; None: smart (only if the pattern has capitals)."""
    regex: reactive[bool] = reactive(True)
    """A regular expression (else the text literally)."""
    filter: reactive[bool] = reactive(False)
    """Show only the matching lines."""
    status: reactive[str] = reactive("")
    """'match 3/120', 'no matches'..."""
    error: reactive[str] = reactive("")
    """Why the pattern cannot be searched (shown instead of the status)."""

    class _BarMessage(Message):
        def __init__(self, bar: SearchBar) -> None:
            super().__init__()
            self.bar = bar

        @property
        def control(self) -> SearchBar:
            return self.bar

    class Changed(_BarMessage):
        """The pattern or an option changed (after a short pause in typing)."""

        def __init__(self, bar: SearchBar, text: str) -> None:
            super().__init__(bar)
            self.text = text

    class Cancelled(_BarMessage):
        """Escape: stop searching."""

    class FilterToggled(_BarMessage):
        """ctrl+f: the filter option changed."""

        def __init__(self, bar: SearchBar, on: bool) -> None:
            super().__init__(bar)
            self.on = on

    def __init__(
        self, *, name: str | None = None, id: str | None = None, classes: str | None = None
    ) -> None:
        super().__init__(name=name, id=id, classes=classes)
        self._timer: Timer | None = None

    def compose(self) -> ComposeResult:
        yield Static("/", id="slash")
        # The last pattern comes back selected: Enter searches it again, typing replaces it.
        yield Input(placeholder="regex (smart case)", id="pattern")
        yield Static(self._options_text(), id="options")
        yield Static(id="search-status")

    def watch_case(self) -> None:
        self._render_options()

    def watch_regex(self) -> None:
        self._render_options()

    def watch_filter(self) -> None:
        self._render_options()

    def watch_status(self) -> None:
        self._render_status()

    def watch_error(self) -> None:
        self._render_status()

    @on(Input.Changed, "#pattern")
    def _typed(self, event: Input.Changed) -> None:
        event.stop()
        if self._timer is not None:
            self._timer.stop()
        self._timer = self.set_timer(DEBOUNCE, self._changed)

    def action_cancel(self) -> None:
        if self._timer is not None:
            self._timer.stop()
            self._timer = None
        self.post_message(self.Cancelled(self))

    def action_toggle_case(self) -> None:
        self.case = {None: True, True: False, False: None}[self.case]
        self._changed()

    def action_toggle_regex(self) -> None:
        self.regex = not self.regex
        self._changed()

    def action_toggle_filter(self) -> None:
        self.filter = not self.filter
        self.post_message(self.FilterToggled(self, self.filter))

    # -- public -------------------------------------------------------------------------

    @property
    def text(self) -> str:
        return self.query_one("#pattern", Input).value

    @property
    def editing(self) -> bool:
        """The pattern has the keyboard (the screen says so at once; the Input's own
        `has_focus` waits for its Focus event, behind keys typed ahead)."""
        return self.screen.focused is self.query_one("#pattern", Input)

    def take_pending(self) -> bool:
        """Stop the typing pause; True if the pattern changed since it was last sent
        (the caller searches it at once: Enter must not wait for the pause)."""
        if self._timer is None:
            return False
        self._timer.stop()
        self._timer = None
        return True

    def open(self) -> None:
        """Show the bar and put the cursor in it; the last pattern is searched again."""
        self.add_class("shown")
        pattern = self.query_one("#pattern", Input)
        # At once, not after the queued messages (`focus()`): the keys typed right after
        # `/` belong to the pattern (an `e` reaching the output would open the pager).
        self.screen.set_focus(pattern)
        if pattern.value:
            self._changed()

    def close(self) -> None:
        self.remove_class("shown")

    # -- internals ----------------------------------------------------------------------

    def _changed(self) -> None:
        self._timer = None
        self.post_message(self.Changed(self, self.text))

    def _options_text(self) -> str:
        case = {None: "smart case", True: "Aa case", False: "aa no case"}[self.case]
        mode = ".* regex" if self.regex else '"" text'
        return " · ".join([case, mode] + (["≡ filter"] if self.filter else []))

    def _render_options(self) -> None:
        if self.is_mounted:
            self.query_one("#options", Static).update(self._options_text())

    def _render_status(self) -> None:
        if not self.is_mounted:
            return
        status = self.query_one("#search-status", Static)
        status.set_class(bool(self.error), "error")
        status.update(plain(self.error or self.status))  # the error may quote the pattern
