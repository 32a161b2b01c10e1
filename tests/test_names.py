"""Naming sessions (issue 13): --names, renaming from the app, titles that say what
runs."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from textual.command import CommandPalette
from textual.widgets import Input

from ccx_tui.app import make_app
from ccx_tui.config import Settings
from ccx_tui.engine.transcripts.store import DataStore
from ccx_tui.widgets.rename_dialog import RenameDialog
from tests.helpers import until
from tests.test_app import SIZE, screen_text


async def test_names_then_rename_and_back_to_the_commands_title(data_dir: Path) -> None:
    """`--names web` names the first command's session (the second has none: its
    title says what it runs); `R` renames one, everywhere at once and in its record;
    an empty name gives it its command's title back; a name with a control character
    is refused in the dialog."""
    app = make_app(
        Settings(data_dir=data_dir, kill_grace=0.3),
        ["sleep 100", "cd / && exec sleep 200"],
        names=["web"],
        sample_usage=False,
    )
    async with app.run_test(size=SIZE) as pilot:
        await until(lambda: len(app._open) == 2, what="two tabs")
        first, second = app._open
        assert app.engine.get(first).spec.name == "web"
        labels = lambda: [app._tabs.label(f"s-{s}").plain for s in app._open]  # noqa: E731
        await until(
            lambda: labels()[0].endswith(" web") and labels()[1].endswith("sleep 200"),
            what=lambda: str(labels()),
        )
        await until(lambda: len(app._sidebar.sessions) == 2, what="both tabs added")
        await pilot.press("2")
        await until(lambda: app._current() == second)
        await pilot.press("R")
        await until(lambda: isinstance(app.screen, RenameDialog), what="the dialog")
        field = app.screen.query_one("#name", Input)
        assert field.value == "sleep 200"
        field.value = "bad\x1bname"
        await pilot.press("enter")
        await until(lambda: "printable" in screen_text(app), what="the refusal")
        field.value = "  api  "
        await pilot.press("enter")
        await until(lambda: app.engine.get(second).spec.name == "api", what="renamed")
        await until(lambda: labels()[1].endswith(" api"), what=lambda: str(labels()))
        await until(lambda: "▶ api" in screen_text(app), what="the sidebar")
        store = DataStore(data_dir)

        def recorded(session_id: str) -> str | None:
            info = store.read_meta(store.session_dir(session_id))
            return info.spec.name if info is not None else "?"

        await until(lambda: recorded(second) == "api", what="the record")
        assert recorded(first) == "web"

        await pilot.press("R")
        await until(lambda: isinstance(app.screen, RenameDialog))
        app.screen.query_one("#name", Input).value = ""
        await pilot.press("enter")
        await until(lambda: app.engine.get(second).spec.name is None, what="no name")
        await until(lambda: labels()[1].endswith("sleep 200"))
        await app.engine.kill_all()


def test_more_names_than_commands_is_refused(data_dir: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "ccx_tui", "--data-dir", str(data_dir), "--names", "a,b", "x"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert proc.returncode == 2
    assert "--names gives 2 names for 1 command(s)" in proc.stderr


async def test_the_switcher_finds_a_session_by_name_or_command(data_dir: Path) -> None:
    """`o` opens the palette over the sessions: typing part of a name or a command
    (fuzzy) lists it, Enter shows its tab.  A title full of markup is shown literally."""
    app = make_app(
        Settings(data_dir=data_dir, kill_grace=0.3),
        ["sleep 101", "sleep 102", "printf 'zebra%s' -X; sleep 103"],
        names=["[b]web[/b]", "api"],
        sample_usage=False,
    )
    async with app.run_test(size=SIZE) as pilot:
        await until(lambda: len(app._open) == 3, what="three tabs")
        web, api, zebra = app._open
        await until(lambda: app._current() == web)  # it opens on the first
        await pilot.press("o")
        await until(lambda: isinstance(app.screen, CommandPalette), what="the switcher")
        await until(lambda: "[b]web[/b]" in screen_text(app), what="every session listed")
        await pilot.press(*"ap")
        await until(lambda: "sleep 101" not in screen_text(app), what="only api left")
        await pilot.press("enter")
        await until(lambda: app._current() == api, what="api shown")
        await pilot.press("o")
        await until(lambda: isinstance(app.screen, CommandPalette))
        await pilot.press(*"zebra")  # a word of the command, not of the title
        await until(lambda: "printf" in screen_text(app))
        await pilot.press("enter")
        await until(lambda: app._current() == zebra, what="the zebra tab")
        assert web in app._open
        await app.engine.kill_all()
