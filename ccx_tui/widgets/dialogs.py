"""Modal dialogs: create a session, confirm an action, choose where to save."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Grid, Horizontal, Vertical
from textual.content import Content
from textual.screen import ModalScreen, Screen
from textual.widgets import (
    Button,
    Checkbox,
    Input,
    Label,
    RadioButton,
    RadioSet,
    Select,
    Static,
)

from ccx_tui.config import parse_env, parse_seconds
from ccx_tui.engine.sessions.session import MAX_NAME, SessionSpec, check_name
from ccx_tui.errors import CcxError
from ccx_tui.widgets.safe import plain, printable

FORM_CSS = """
FORM {
    align: center middle;
    #dialog {
        width: 76;
        height: auto;
        border: thick $primary 60%;
        background: $surface;
        padding: 1 2;
    }
    Label.field { margin-top: 0; }
    #error { color: $error; height: auto; margin-top: 1; display: none; }
    #error.shown { display: block; }
    #buttons { height: auto; margin-top: 1; align-horizontal: right; }
    .pair { height: auto; }
    .pair > Vertical { height: auto; width: 1fr; }
    Button { margin-left: 1; }
}
"""
"""The look shared by the dialogs with fields (FORM: the dialog's class name)."""


def show_refusal(screen: Screen[Any], reason: str) -> None:
    """Show why the dialog's values are refused, in its #error line (literally: the
    reason quotes what was typed, a path, a command)."""
    error = screen.query_one("#error", Static)
    error.update(plain(f"✘ {reason}", multiline=True))
    error.add_class("shown")


class CreateSessionDialog(ModalScreen[tuple[SessionSpec, str] | None]):
    """Ask for a command, a directory, a TTL (and where to run); refuse bad values
    inline with the reason.  Dismisses with (spec, location) or None."""

    AUTO_FOCUS = "*"  # the app turns auto-focus off for its main screen only

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "cancel", "Cancel")]

    DEFAULT_CSS = FORM_CSS.replace("FORM", "CreateSessionDialog")

    def __init__(
        self,
        *,
        cwd: str | None = None,
        ttl: float | None = None,
        locations: list[str] | None = None,
        tty: bool = True,
        name: str | None = None,
        id: str | None = None,
        classes: str | None = None,
    ) -> None:
        super().__init__(name=name, id=id, classes=classes)
        self._tty = tty
        cwd = cwd or os.getcwd()
        # An input shows its value raw: a directory name holding ESC would reach the
        # terminal.  Empty means the current directory anyway.
        self._cwd = cwd if printable(cwd) == cwd else ""
        self._ttl = ttl
        self._locations = locations or ["local"]

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog"):
            yield Static("[b]New session[/b]")
            yield Label("Command", classes="field")
            yield Input(placeholder="e.g. make -j4 test", id="command")
            yield Label("Directory", classes="field")
            yield Input(value=self._cwd, placeholder="the current directory", id="cwd")
            with Horizontal(classes="pair"):
                with Vertical():
                    yield Label("TTL (90s / 5m / 2h; empty: none)", classes="field")
                    yield Input(value="" if self._ttl is None else f"{self._ttl:g}", id="ttl")
                with Vertical():
                    yield Label("Name (empty: what it runs)", classes="field")
                    yield Input(placeholder="e.g. tests", max_length=MAX_NAME, id="name")
            yield Label("Environment (NAME=VALUE, space separated)", classes="field")
            yield Input(id="env")
            yield Checkbox(
                "Terminal: colours, line-buffered output, typing (i); off: pipes",
                value=self._tty,
                id="tty",
            )
            if len(self._locations) > 1:
                yield Label("Run on", classes="field")
                yield Select(
                    [(Text(printable(loc)), loc) for loc in self._locations],  # server names
                    value=self._locations[0],
                    allow_blank=False,
                    id="location",
                )
            yield Static("", id="error")
            with Horizontal(id="buttons"):
                yield Button("Cancel", id="cancel")
                yield Button("Start", id="start", variant="primary")

    def on_mount(self) -> None:
        self.query_one("#command", Input).focus()

    @on(Input.Submitted)
    @on(Button.Pressed, "#start")
    def _submit(self) -> None:
        try:
            spec = self._spec()
        except CcxError as exc:
            show_refusal(self, str(exc))
            return
        location = "local"
        if len(self._locations) > 1:
            location = str(self.query_one("#location", Select).value)
        self.dismiss((spec, location))

    @on(Button.Pressed, "#cancel")
    def action_cancel(self) -> None:
        self.dismiss(None)

    def _spec(self) -> SessionSpec:
        command = self.query_one("#command", Input).value
        cwd = self.query_one("#cwd", Input).value.strip() or None
        ttl_text = self.query_one("#ttl", Input).value.strip()
        env_text = self.query_one("#env", Input).value.split()
        ttl = parse_seconds(ttl_text) if ttl_text else None
        tty = self.query_one("#tty", Checkbox).value
        name = check_name(self.query_one("#name", Input).value) or None
        spec = SessionSpec(
            command=command, cwd=cwd, env=parse_env(env_text), ttl=ttl, tty=tty, name=name
        )
        return spec.validated()


class ConfirmDialog(ModalScreen[bool]):
    """A yes/no question; `y`/Enter confirms, `n`/Escape declines."""

    AUTO_FOCUS = "*"  # the app turns auto-focus off for its main screen only

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("y", "answer(True)", "Yes"),
        Binding("n,escape", "answer(False)", "No"),
    ]

    DEFAULT_CSS = """
    ConfirmDialog {
        align: center middle;
        #dialog {
            width: 60;
            height: auto;
            border: thick $warning 60%;
            background: $surface;
            padding: 1 2;
            grid-size: 2;
            grid-rows: auto auto;
            grid-gutter: 1;
        }
        #question { column-span: 2; height: auto; }
        Button { width: 100%; }
    }
    """

    def __init__(
        self,
        question: str | Content,
        *,
        yes: str = "Yes",
        name: str | None = None,
        id: str | None = None,
        classes: str | None = None,
    ) -> None:
        """A `question` given as a str is shown literally; Content keeps its styles."""
        super().__init__(name=name, id=id, classes=classes)
        self._question = plain(question, multiline=True) if isinstance(question, str) else question
        self._yes = yes

    def compose(self) -> ComposeResult:
        with Grid(id="dialog"):
            yield Static(self._question, id="question")
            yield Button(f"{self._yes} (y)", id="yes", variant="error")
            yield Button("No (n)", id="no")

    def on_mount(self) -> None:
        self.query_one("#no", Button).focus()

    @on(Button.Pressed)
    def _pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id == "yes")

    def action_answer(self, answer: bool) -> None:
        self.dismiss(answer)


class QuitDialog(ModalScreen[str | None]):
    """Quitting while sessions run: `k` kills them, `d` detaches (they keep running
    in the engine process), `c`/Escape cancels.  Dismisses with "kill", "detach" or
    None."""

    AUTO_FOCUS = "*"

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("k", "answer('kill')", "Kill"),
        Binding("d", "answer('detach')", "Detach"),
        Binding("c,escape", "answer(None)", "Cancel"),
    ]

    DEFAULT_CSS = """
    QuitDialog {
        align: center middle;
        #dialog {
            width: 66;
            height: auto;
            border: thick $warning 60%;
            background: $surface;
            padding: 1 2;
            grid-size: 3;
            grid-rows: auto auto;
            grid-gutter: 1;
        }
        #question { column-span: 3; height: auto; }
        Button { width: 100%; }
    }
    """

    def __init__(
        self,
        busy: int,
        *,
        lost_on_detach: int = 0,
        come_back: str = "`ccx-tui attach` brings them back",
        name: str | None = None,
        id: str | None = None,
        classes: str | None = None,
    ) -> None:
        """`busy` sessions run or wait; `lost_on_detach` of them (on servers this
        app runs them on) end even if it detaches; `come_back` says how to see the
        others again."""
        super().__init__(name=name, id=id, classes=classes)
        question = (
            f"{busy} session(s) still running or queued.\n"
            f"Detach to leave them running: {come_back}."
        )
        if lost_on_detach:
            question += f"\n{lost_on_detach} of them on servers end either way."
        self._question = question

    def compose(self) -> ComposeResult:
        with Grid(id="dialog"):
            yield Static(self._question, id="question", markup=False)
            yield Button("Kill and quit (k)", id="kill", variant="error")
            yield Button("Detach (d)", id="detach", variant="primary")
            yield Button("Cancel (c)", id="cancel")

    def on_mount(self) -> None:
        self.query_one("#detach", Button).focus()

    @on(Button.Pressed)
    def _pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id if event.button.id in ("kill", "detach") else None)

    def action_answer(self, answer: str | None) -> None:
        self.dismiss(answer)


@dataclass(frozen=True, slots=True)
class SaveChoice:
    """What `SaveDialog` was told: where to save, and whether as plain text."""

    path: Path
    """The absolute path to save to."""
    plain: bool
    """Plain text (colours and terminal codes removed), else the exact bytes."""


class SaveDialog(ModalScreen[SaveChoice | None]):
    """Ask where to save and how (plain text, the default, or the exact bytes); refuse a
    missing directory inline and ask before overwriting.  Dismisses with a `SaveChoice`
    (its path absolute), or None."""

    AUTO_FOCUS = "*"  # the app turns auto-focus off for its main screen only

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "cancel", "Cancel")]

    DEFAULT_CSS = FORM_CSS.replace("FORM", "SaveDialog")

    def __init__(
        self,
        what: str,
        default: str,
        *,
        name: str | None = None,
        id: str | None = None,
        classes: str | None = None,
    ) -> None:
        super().__init__(name=name, id=id, classes=classes)
        self._what = what
        self._default = default
        self._confirmed: Path | None = None  # asked to overwrite this one: Enter again

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog"):
            yield Static(Content.from_markup("[b]Save $what[/b]", what=self._what))
            yield Label("To file", classes="field")
            yield Input(value=self._default, id="path")
            yield Label("Format", classes="field")
            with RadioSet(id="format"):
                yield RadioButton(
                    "plain text (colours and terminal codes removed)", value=True, id="plain"
                )
                yield RadioButton("exact bytes (as recorded)", id="exact")
            yield Static("", id="error")
            with Horizontal(id="buttons"):
                yield Button("Cancel", id="cancel")
                yield Button("Save", id="save", variant="primary")

    def on_mount(self) -> None:
        self.query_one("#path", Input).focus()

    @on(Input.Changed)
    def _edited(self) -> None:
        self._confirmed = None
        self.query_one("#error", Static).remove_class("shown")

    @on(Input.Submitted)
    @on(Button.Pressed, "#save")
    def _submit(self) -> None:
        text = self.query_one("#path", Input).value.strip()
        path = Path(os.path.abspath(os.path.expanduser(text))) if text else None
        if path is None:
            self._refuse("type a file name")
        elif path.is_dir():
            self._refuse(f"{path} is a directory")
        elif not path.parent.is_dir():
            self._refuse(f"no such directory: {path.parent}")
        elif path.exists() and self._confirmed != path:
            self._confirmed = path
            self._refuse(f"{path.name} exists: press Enter again to overwrite it")
        else:
            self.dismiss(SaveChoice(path, plain=self.query_one("#plain", RadioButton).value))

    @on(Button.Pressed, "#cancel")
    def action_cancel(self) -> None:
        self.dismiss(None)

    def _refuse(self, reason: str) -> None:
        show_refusal(self, reason)


class GotoLineDialog(ModalScreen[int | None]):
    """Ask for a line number (1-based, at most `last`); dismisses with it 0-based."""

    AUTO_FOCUS = "*"  # the app turns auto-focus off for its main screen only

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "cancel", "Cancel")]

    DEFAULT_CSS = FORM_CSS.replace("FORM", "GotoLineDialog").replace("width: 76", "width: 44")

    def __init__(
        self,
        last: int,
        *,
        name: str | None = None,
        id: str | None = None,
        classes: str | None = None,
    ) -> None:
        super().__init__(name=name, id=id, classes=classes)
        self._last = last

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog"):
            yield Static(f"[b]Go to line[/b] (1 to {self._last:,})")
            yield Input(placeholder="line number", id="line")
            yield Static("", id="error")

    @on(Input.Submitted)
    def _submit(self) -> None:
        text = self.query_one("#line", Input).value.strip().replace(",", "").replace("_", "")
        try:
            number = int(text)
        except ValueError:
            show_refusal(self, f"not a line number: {text!r}" if text else "type a line number")
            return
        if number < 1:
            show_refusal(self, "lines start at 1")
            return
        self.dismiss(min(number, self._last) - 1)

    def action_cancel(self) -> None:
        self.dismiss(None)
