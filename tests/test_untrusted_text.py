"""Untrusted text is data: whatever a command, a session record, a server or a path holds,
the real app shows it literally on every surface and never crashes on it."""

from __future__ import annotations

import asyncio
import shlex
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from textual.content import Content
from textual.message import Message
from textual.notifications import Notify
from textual.widget import Widget
from textual.widgets import Input, OptionList, Static

from ccx_tui.app import make_app
from ccx_tui.config import DeclaredSession, ServerTarget, Settings
from ccx_tui.engine import State
from ccx_tui.engine.sessions.session import SessionSpec
from ccx_tui.widgets.dialogs import ConfirmDialog, CreateSessionDialog, QuitDialog, SaveDialog
from ccx_tui.widgets.help import HelpScreen
from ccx_tui.widgets.history import HistoryScreen
from ccx_tui.widgets.safe import printable
from tests.helpers import stop_engines_under, until

SIZE = (120, 36)
PIECES = [
    "[", "]", "[/]", "[b]", "[/b]", "[@click=app.quit]", "[link='x']", "[$error]", "$var",
    "$", "\\", "\\[", "\x1b", "\x1b[31m", "\x1b]0;title\x07", "\x9b", "\x00", "\x07", "\r",
    "\n", "\t", "\x7f", "\x85", "\u2028", "x", " ", "é", "✔",
]  # fmt: skip
HOSTILE = st.lists(st.sampled_from(PIECES), min_size=1, max_size=10).map("".join)


def shown(widget: Widget) -> str:
    """The plain text a Static (or a Tab) holds, whole (the screen may cut it)."""
    assert isinstance(widget, Static)
    visual = widget.visual
    assert isinstance(visual, Content), visual
    return visual.plain


async def drive(tmp: Path, text: str) -> None:
    """Sessions named, run, killed and failed with `text` in every field; every screen."""
    name = f"n{text}"  # never blank
    literal = printable(name)
    path_safe = text.replace("/", "_").replace("\x00", "_")
    shell_text = text.replace("\x00", "_")  # a command cannot hold NUL; the name can
    existing_dir = tmp / f"dir{path_safe}end"  # dialogs strip blanks at the ends
    missing_dir = tmp / f"gone{path_safe}end"
    existing_dir.mkdir()
    exits_3 = (
        f"printf '%s\\n' {shlex.quote(shell_text)}; echo {shlex.quote(shell_text)} >&2; exit 3"
    )
    declared = [
        DeclaredSession(SessionSpec("sleep 1000", name=name)),
        DeclaredSession(SessionSpec("true", name=name, cwd=str(missing_dir))),
        DeclaredSession(SessionSpec("true", name=name, shell=f"/nonexistent/{path_safe}")),
        DeclaredSession(SessionSpec("true", name=name), server=f"nowhere{text}"),
    ]
    app = make_app(
        Settings(data_dir=tmp / "data", kill_grace=0.3),
        [exits_3],
        declared=declared,
        servers=[ServerTarget("ws://127.0.0.1:9", name=name)],  # unreachable: a status
        sample_usage=False,
    )
    said: list[str] = []  # every toast, even those that have timed out

    def toasts() -> str:
        return "\n".join(said)

    def hook(message: Message) -> None:
        if isinstance(message, Notify):
            said.append(message.notification.message)

    async with app.run_test(size=SIZE, message_hook=hook) as pilot:
        await until(lambda: len(app._open) == 3, what="three tabs")
        sleeper, failed, exited = app._open
        await until(lambda: app.engine.get(failed).state is State.FAILED, what="failed")
        await until(lambda: app.engine.get(exited).state is State.EXITED, what="exited")
        await until(
            lambda: all(
                part in toasts() for part in (literal, "exit 3", "no such directory", "no server")
            ),
            what=lambda: f"the toasts, not {toasts()!r}",
        )
        assert printable(path_safe, multiline=True) in toasts()  # the missing directory
        assert printable(app.engine.get(exited).spec.title) in toasts()
        for session_id in app._open:
            pane = app._panes[session_id]
            label = app._tabs.label(pane.id or "").plain
            assert printable(app.engine.get(session_id).spec.title) in label
            assert "\n" not in label and "\x1b" not in label
        failed_status = shown(app._panes[failed].query_one("#status"))
        assert printable(app.engine.get(failed).reason or "") in failed_status
        await until(lambda: literal in shown(app._sidebar.query_one("#limits")))
        assert literal in shown(app._sidebar.query_one("#rows"))

        await pilot.press("1", "w")  # still running: the question names it
        await until(lambda: isinstance(app.screen, ConfirmDialog), what="close question")
        assert literal in shown(app.screen.query_one("#question"))
        await pilot.press("n")
        await pilot.press("q")
        await until(lambda: isinstance(app.screen, QuitDialog), what="quit question")
        await pilot.press("c")

        await pilot.press("c")  # the create dialog: a server name, a refused directory
        dialog = app.screen
        assert isinstance(dialog, CreateSessionDialog)
        dialog.query_one("#command", Input).value = "true"
        dialog.query_one("#cwd", Input).value = str(missing_dir)
        await pilot.press("enter")
        await until(lambda: "no such directory" in shown(dialog.query_one("#error")))
        assert printable(path_safe, multiline=True) in shown(dialog.query_one("#error"))
        await pilot.press("escape")

        await pilot.press("3", "s")  # the save dialog refuses a directory by its name
        await until(lambda: isinstance(app.screen, SaveDialog), what="save dialog")
        save = app.screen
        save.query_one("#path", Input).value = str(existing_dir)
        await pilot.press("enter")
        await until(lambda: "is a directory" in shown(save.query_one("#error")))
        assert printable(path_safe, multiline=True) in shown(save.query_one("#error"))
        await pilot.press("escape")

        await app.engine.kill(sleeper, reason=text)  # a reason, as a server may give
        await until(lambda: app.engine.get(sleeper).state is State.KILLED)
        await until(lambda: printable(text, multiline=True) in toasts(), what="reason")
        while app._open:  # all ended: each closes at once
            left = len(app._open)
            await pilot.press("w")
            await until(lambda: len(app._open) < left, what="a tab closed")  # noqa: B023
        await pilot.press("h")
        await until(lambda: isinstance(app.screen, HistoryScreen), what="history")
        options = app.screen.query_one(OptionList)
        prompts = [str(options.get_option_at_index(i).prompt) for i in range(3)]
        assert any(printable(exits_3.replace("\n", " ")) in p for p in prompts)
        await pilot.press("escape")
        await pilot.press("question_mark")
        await until(lambda: isinstance(app.screen, HelpScreen), what="help")
        await pilot.press("escape")
        assert app.is_running
        await pilot.press("q")  # nothing runs: quits at once
        await until(lambda: not app.is_running, what="exit")


@settings(
    max_examples=7,  # each runs the whole app through every screen: ~4 s
    deadline=None,
    derandomize=True,  # the same examples on every run: CI must not flip
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(text=HOSTILE)
@example(text="tr '[/]' _")  # the command of the report
def test_hostile_text_is_shown_literally_everywhere(text: str) -> None:
    """Regression: a command like `tr '[/]' _` that exited non-zero raised MarkupError in
    its toast and the app exited, killing every session; reasons, titles, paths and
    server names reached markup and the terminal the same way.  Each example names,
    runs, kills and fails sessions with generated text full of markup and control
    characters, and opens every screen: the app must keep running and show the text
    literally, control characters as visible escapes (`^[`), never a raw ESC."""
    with tempfile.TemporaryDirectory(prefix="ccx-untrusted-") as tmp:
        try:
            asyncio.run(drive(Path(tmp), text))
        finally:
            stop_engines_under(Path(tmp))
