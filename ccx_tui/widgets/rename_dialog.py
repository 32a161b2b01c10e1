"""The rename dialog: a session's name, edited in place."""

from __future__ import annotations

from typing import ClassVar

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Input, Label, Static

from ccx_tui.engine.sessions.session import MAX_NAME, check_name
from ccx_tui.errors import CcxError
from ccx_tui.widgets.safe import plain, printable


class RenameDialog(ModalScreen[str | None]):
    """Ask for a session's new name; Enter renames (empty: back to the command's
    title), Escape cancels.  A name that cannot be one is refused inline."""

    AUTO_FOCUS = "#name"

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "cancel", "Cancel")]

    DEFAULT_CSS = """
    RenameDialog {
        align: center middle;
        #dialog {
            width: 60;
            height: auto;
            border: thick $primary 60%;
            background: $surface;
            padding: 1 2;
        }
        #error { color: $error; height: auto; display: none; }
        #error.shown { display: block; }
    }
    """

    def __init__(
        self,
        current: str,
        *,
        name: str | None = None,
        id: str | None = None,
        classes: str | None = None,
    ) -> None:
        """`current` is the session's title (a name or its command's), shown as it is."""
        super().__init__(name=name, id=id, classes=classes)
        # An input shows its value raw: a title holding ESC would reach the terminal.
        self._current = current if printable(current) == current else ""

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog"):
            yield Label("Rename the session (empty: named after its command)")
            yield Input(value=self._current, max_length=MAX_NAME, id="name")
            yield Static("", id="error")

    @on(Input.Submitted)
    def _submit(self) -> None:
        value = self.query_one("#name", Input).value
        try:
            self.dismiss(check_name(value))
        except CcxError as exc:
            error = self.query_one("#error", Static)
            error.update(plain(f"✘ {exc}"))
            error.add_class("shown")

    def action_cancel(self) -> None:
        self.dismiss(None)
