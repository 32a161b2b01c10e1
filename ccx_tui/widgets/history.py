"""A list of past sessions to open read-only."""

from __future__ import annotations

import datetime as dt
from typing import ClassVar

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import OptionList, Static
from textual.widgets.option_list import Option

from ccx_tui.engine.sessions.session import SessionInfo
from ccx_tui.widgets.safe import printable
from ccx_tui.widgets.status import size, state_icon, state_label


class HistoryScreen(ModalScreen[str | None]):
    """Pick a past session; dismisses with its id, or None."""

    AUTO_FOCUS = "*"  # the app turns auto-focus off for its main screen only

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape,q", "close", "Close")]

    DEFAULT_CSS = """
    HistoryScreen {
        align: center middle;
        #history {
            width: 90%;
            height: 80%;
            border: thick $primary 60%;
            background: $surface;
            padding: 0 1;
        }
        OptionList { height: 1fr; }
    }
    """

    def __init__(self, sessions: list[SessionInfo]) -> None:
        super().__init__()
        self._sessions = sessions

    def compose(self) -> ComposeResult:
        options = []
        for info in reversed(self._sessions):  # newest first
            icon, _ = state_icon(info)
            when = dt.datetime.fromtimestamp(info.created_at).strftime("%Y-%m-%d %H:%M")
            label = Text(no_wrap=True, overflow="ellipsis")
            label.append(f"{icon} {when}  {state_label(info):<12} {size(info.bytes):>7}  ")
            label.append(printable(info.spec.command.replace("\n", " ")))  # literally
            options.append(Option(label, id=info.id))
        with Vertical(id="history"):
            yield Static(f"[b]Past sessions[/b] ({len(options)}) — Enter opens, Escape closes")
            if options:
                yield OptionList(*options)
            else:
                yield Static("No past sessions in the data directory.")

    @on(OptionList.OptionSelected)
    def _picked(self, event: OptionList.OptionSelected) -> None:
        self.dismiss(event.option.id)

    def action_close(self) -> None:
        self.dismiss(None)
