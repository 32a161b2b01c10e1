"""TranscriptPanel with Pilot: `/` search, n/N, filter, copy, save, pager, timestamps."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any, cast

import pytest
from textual import events
from textual.app import App, ComposeResult
from textual.pilot import Pilot
from textual.widgets import Input

from ccx_tui.engine.transcripts.transcript import (
    RECORD,
    SIDECAR_NAME,
    STDERR,
    STDOUT,
    TRANSCRIPT_NAME,
)
from ccx_tui.widgets.dialogs import GotoLineDialog, SaveDialog
from ccx_tui.widgets.search_bar import SearchBar
from ccx_tui.widgets.transcript_panel import TranscriptPanel, default_save_name, pager_command
from ccx_tui.widgets.transcript_view import TranscriptView
from tests.test_transcript_view import rows, wait_for

SIZE = (80, 24)


class PanelApp(App[None]):
    def __init__(self, path: Path) -> None:
        super().__init__()
        self.path = path
        self.notes: list[str] = []

    def compose(self) -> ComposeResult:
        yield TranscriptPanel(self.path, title="demo")

    def on_mount(self) -> None:
        self.query_one(TranscriptView).focus()

    def notify(self, message: str, **kwargs: Any) -> None:  # type: ignore[override]
        self.notes.append(message)
        super().notify(message, **kwargs)


def make_log(path: Path, count: int = 20_000, every: int = 1000) -> Path:
    """'line N', with 'ERROR code=N' on every `every`th line (at N % every == 500)."""
    path.write_bytes(
        b"".join(
            b"ERROR code=%d\n" % i if i % every == 500 else b"line %d\n" % i
            for i in range(1, count + 1)
        )
    )
    return path


class _Bar:
    """The panel's `/` bar, looked up when used: it is mounted when first opened."""

    def __init__(self, app: PanelApp) -> None:
        self._app = app

    def __getattr__(self, name: str) -> object:
        return getattr(self._app.query_one(SearchBar), name)


def parts(app: PanelApp) -> tuple[TranscriptView, SearchBar]:
    return app.query_one(TranscriptView), cast(SearchBar, _Bar(app))


async def search(pilot: Pilot[None], text: str) -> None:
    await pilot.press("slash")
    await pilot.press(*text)


def status(bar: SearchBar) -> str:
    return bar.error or bar.status


async def test_the_bar_is_mounted_when_first_opened_and_gets_the_keys_typed_after_slash(
    tmp_path: Path,
) -> None:
    """A panel never searched has no bar (five widgets, most of a tab's memory); `/`
    mounts it, and keys typed right behind the `/` (read with it, as a paste or a fast
    typist's: none waits for the bar) still go to its pattern, not to the output (an
    `e` there opened the pager, before the bar was mounted lazily too).  A `/` in the
    pattern is a `/`."""
    app = PanelApp(make_log(tmp_path / "a.log"))
    async with app.run_test(size=SIZE) as pilot:
        view = app.query_one(TranscriptView)
        await wait_for(pilot, lambda: view.line_count == 20_000)
        assert not app.query(SearchBar)
        for key, char in (("slash", "/"), ("e", "e"), ("r", "r"), ("slash", "/")):
            event = events.Key(key, char)
            event.set_sender(app)
            app._driver.send_message(event)  # as the terminal's driver hands keys over
        await wait_for(
            pilot, lambda: bool(app.query(SearchBar)) and app.query_one(Input).value == "er/"
        )
        assert isinstance(app.focused, Input) and not app.notes
        bar = app.query_one(SearchBar)
        await wait_for(pilot, lambda: status(bar) == "no matches")


async def test_search_counts_the_whole_file_and_steps_through_matches(tmp_path: Path) -> None:
    app = PanelApp(make_log(tmp_path / "a.log"))
    async with app.run_test(size=SIZE) as pilot:
        view, bar = parts(app)
        await wait_for(pilot, lambda: view.line_count == 20_000)
        await search(pilot, "error code=")
        await wait_for(pilot, lambda: status(bar) == "20 matching lines")
        assert isinstance(app.focused, Input)
        await pilot.press("enter")  # the first match from the top of the screen: wraps
        await wait_for(pilot, lambda: status(bar) == "match 1/20")
        assert app.focused is view
        assert view.cursor_line == 499 and not view.following
        assert any(row == "ERROR code=500" for row in rows(view))
        await pilot.press("n")
        assert view.cursor_line == 1499 and status(bar) == "match 2/20"
        await pilot.press("N", "N")
        assert view.cursor_line == 19_499 and status(bar) == "match 20/20"  # wrapped back
        await pilot.press("n")
        assert view.cursor_line == 499  # and forward again


async def test_smart_case_and_toggles(tmp_path: Path) -> None:
    path = tmp_path / "case.log"
    path.write_bytes(b"Error one\nerror two\nERROR three\nerr.r four\n")
    app = PanelApp(path)
    async with app.run_test(size=SIZE) as pilot:
        view, bar = parts(app)
        await search(pilot, "error")
        await wait_for(pilot, lambda: status(bar) == "3 matching lines")  # smart: any case
        await pilot.press("home", "delete", "E")  # "Error": a capital, so case matters
        await wait_for(pilot, lambda: status(bar) == "1 matching line")
        await pilot.press("ctrl+t")  # smart -> exact case: the same here
        assert "Aa case" in str(bar.query_one("#options").render())
        await pilot.press("ctrl+t")  # exact -> ignore case
        await wait_for(pilot, lambda: status(bar) == "3 matching lines")
        await pilot.press("ctrl+a", "ctrl+k", *"err.r")
        await wait_for(pilot, lambda: status(bar) == "4 matching lines")  # '.' any char
        await pilot.press("ctrl+r")  # plain text: the dot is a dot
        await wait_for(pilot, lambda: status(bar) == "1 matching line")
        assert view.searcher is not None


async def test_invalid_regex_is_shown_inline_and_keeps_the_view(tmp_path: Path) -> None:
    app = PanelApp(make_log(tmp_path / "a.log", 100))
    async with app.run_test(size=SIZE) as pilot:
        view, bar = parts(app)
        await search(pilot, "[unclosed")
        await wait_for(pilot, lambda: bar.error != "")
        assert "unterminated character set" in bar.error
        assert view.searcher is None  # no half search running
        assert "line 100" in rows(view)  # the output is still shown
        await pilot.press(*["backspace"] * 9, *"line 9")
        await wait_for(pilot, lambda: bar.error == "" and status(bar) == "11 matching lines")


async def test_matches_are_highlighted(tmp_path: Path) -> None:
    path = tmp_path / "hl.log"
    path.write_bytes(b"alpha beta alpha\ngamma\n")
    app = PanelApp(path)
    async with app.run_test(size=SIZE) as pilot:
        view, bar = parts(app)
        await search(pilot, "alpha")
        await wait_for(pilot, lambda: status(bar) == "1 matching line")
        match_style = view.get_component_rich_style("transcript-view--match")
        strip = view.render_line(0)
        bg = match_style.bgcolor
        lit = "".join(seg.text for seg in strip if seg.style and seg.style.bgcolor == bg)
        assert lit == "alphaalpha"


async def test_filter_shows_matching_lines_with_numbers_and_returns(tmp_path: Path) -> None:
    app = PanelApp(make_log(tmp_path / "a.log"))
    async with app.run_test(size=SIZE) as pilot:
        view, bar = parts(app)
        await wait_for(pilot, lambda: view.line_count == 20_000)
        await search(pilot, "code=")
        await wait_for(pilot, lambda: status(bar) == "20 matching lines")
        await pilot.press("enter", "n", "n")  # match 3: line 2500
        assert view.cursor_line == 2499
        await pilot.press("ampersand")
        assert view.filtering and bar.filter
        shown = [row.split() for row in rows(view) if row.strip()]
        assert len(shown) == 20
        assert all(words[1] == "ERROR" for words in shown)
        assert shown[2][:3] == ["2500", "ERROR", "code=2500"]  # the file's line number
        await pilot.press("n")
        assert view.cursor_line == 3499
        await pilot.press("ampersand")  # back to every line, at the cursor's line
        assert not view.filtering
        assert any(row == "ERROR code=3500" for row in rows(view))
        await pilot.press("ampersand", "escape")  # Esc while filtering: all lines, same place
        assert view.searcher is None and view.cursor_line is None
        assert any(row == "ERROR code=3500" for row in rows(view))
        assert not bar.has_class("shown")


async def test_search_covers_lines_that_arrive_later(tmp_path: Path) -> None:
    path = make_log(tmp_path / "live.log", 2000)
    app = PanelApp(path)
    async with app.run_test(size=SIZE) as pilot:
        view, bar = parts(app)
        await search(pilot, "ERROR")
        await wait_for(pilot, lambda: status(bar) == "2 matching lines")
        await pilot.press("ctrl+f")  # filter from the bar
        assert view.filtering
        await pilot.press("escape")  # Esc in the bar ends the search
        assert view.searcher is None and not view.filtering
        await search(pilot, "")  # the bar keeps the pattern: searched again
        await pilot.press("enter", "ampersand")  # filter from the output
        assert view.filtering
        with path.open("ab") as f:
            f.write(b"more\nERROR late one\nstill more\nERROR late")  # last: no newline yet
        view.refresh_source()
        await wait_for(pilot, lambda: status(bar) == "match 1/4")
        assert [r for r in rows(view) if r.strip()][-1].split() == ["2004", "ERROR", "late"]
        with path.open("ab") as f:
            f.write(b" two\n")  # the partial line completes: still counted once
        view.refresh_source()
        await wait_for(pilot, lambda: [r for r in rows(view) if r.strip()][-1].endswith("two"))
        assert status(bar) == "match 1/4"


async def test_copy_the_cursor_line_or_the_last_line(tmp_path: Path) -> None:
    path = tmp_path / "c.log"
    path.write_bytes(b"first \x1b[31mred\x1b[0m line\nsecond\nthird\n")
    app = PanelApp(path)
    async with app.run_test(size=SIZE) as pilot:
        view, _ = parts(app)
        await pilot.press("y")  # no cursor: the last line on screen
        assert app.clipboard == "third"
        await pilot.click(TranscriptView, offset=(2, 0))  # the cursor goes to line 1
        assert view.cursor_line == 0
        await pilot.press("y")
        assert app.clipboard == "first red line"  # as shown: colour codes left out
        assert app.notes[-1] == "copied line 1 (14 characters)"


async def test_save_writes_the_transcript_or_the_filtered_lines(tmp_path: Path) -> None:
    path = make_log(tmp_path / "s.log", 3000)
    app = PanelApp(path)
    out = tmp_path / "out.log"
    async with app.run_test(size=SIZE) as pilot:
        view, bar = parts(app)
        await pilot.press("s")
        assert isinstance(app.screen, SaveDialog)
        await pilot.press("ctrl+a", "ctrl+k", *str(out), "enter")
        await wait_for(pilot, lambda: out.exists())
        assert out.read_bytes() == path.read_bytes()
        await wait_for(pilot, lambda: any(n.startswith("saved transcript") for n in app.notes))

        await search(pilot, "ERROR")
        await wait_for(pilot, lambda: status(bar) == "3 matching lines")
        await pilot.press("enter", "ampersand", "s")
        await pilot.press("ctrl+a", "ctrl+k", *str(out), "enter")
        assert isinstance(app.screen, SaveDialog)  # it exists: asks first
        assert "press Enter again to overwrite" in str(app.screen.query_one("#error").render())
        await pilot.press("enter")
        await wait_for(pilot, lambda: out.read_bytes().count(b"\n") == 3)
        assert out.read_bytes() == b"ERROR code=500\nERROR code=1500\nERROR code=2500\n"


async def test_save_refuses_a_missing_directory_inline(tmp_path: Path) -> None:
    app = PanelApp(make_log(tmp_path / "s.log", 10))
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("s")
        target = tmp_path / "nowhere" / "x.log"
        await pilot.press("ctrl+a", "ctrl+k", *str(target), "enter")
        assert isinstance(app.screen, SaveDialog)
        assert "no such directory" in str(app.screen.query_one("#error").render())
        await pilot.press("escape")
        assert not isinstance(app.screen, SaveDialog)


async def test_pager_needs_a_terminal_and_says_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Under Pilot there is no terminal to hand over: a clear note, no traceback
    (the real pager run is tested in tmux).  `less`, whatever the machine's $PAGER:
    another pager gets a copy made first, and the note comes later."""
    monkeypatch.setenv("PAGER", "less")
    app = PanelApp(make_log(tmp_path / "p.log", 10))
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("e")
        assert app.notes[-1] == "cannot suspend the app in this terminal"


def test_pager_command_passes_the_line_to_pagers_that_take_it(tmp_path: Path) -> None:
    log = tmp_path / "x.log"
    assert pager_command(log, 12, {}) == ["less", "+12", str(log)]
    assert pager_command(log, 12, {"PAGER": "less -R"}) == ["less", "-R", "+12", str(log)]
    assert pager_command(log, 12, {"EDITOR": "/usr/bin/vim"}) == ["/usr/bin/vim", "+12", str(log)]
    assert pager_command(log, 12, {"PAGER": "bat"}) == ["bat", str(log)]
    assert pager_command(log, None, {"PAGER": "more"}) == ["more", str(log)]


def test_default_save_name_is_a_safe_file_name() -> None:
    assert default_save_name("npm run dev", False) == os.path.join(os.getcwd(), "npm-run-dev.log")
    assert default_save_name("../../etc", True).endswith("/etc-filtered.log")
    assert default_save_name("///", False).endswith("/transcript.log")


@pytest.fixture
def utc(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


async def test_timestamps_show_when_each_line_arrived(tmp_path: Path, utc: None) -> None:
    directory = tmp_path / "session"
    directory.mkdir()
    path = directory / TRANSCRIPT_NAME
    path.write_bytes(b"boot\nready\noops\n")
    base = 1_700_000_000.0  # 22:13:20 UTC
    (directory / SIDECAR_NAME).write_bytes(
        RECORD.pack(0, base, STDOUT)
        + RECORD.pack(5, base + 61, STDOUT)
        + RECORD.pack(11, base + 3600, STDERR)
    )
    app = PanelApp(path)
    async with app.run_test(size=SIZE) as pilot:
        view, _ = parts(app)
        await pilot.press("t")
        assert view.show_timestamps
        assert rows(view)[:3] == ["22:13:20 boot", "22:14:21 ready", "23:13:20 oops"]
        await pilot.press("t")
        assert rows(view)[:3] == ["boot", "ready", "oops"]


def test_snapshot_timestamps_and_numbers(snap_compare: Any, tmp_path: Path, utc: None) -> None:
    """`t`: when each line arrived, beside the line numbers; stderr lines tinted."""
    directory = tmp_path / "session"
    directory.mkdir()
    (directory / TRANSCRIPT_NAME).write_bytes(
        b"boot sequence\nlistening on :8000\nGET / 200\nWARN slow request\nGET /x 404\n"
    )
    base = 1_700_000_000.0  # 22:13:20 UTC
    (directory / SIDECAR_NAME).write_bytes(
        RECORD.pack(0, base, STDOUT)
        + RECORD.pack(14, base + 2, STDOUT)
        + RECORD.pack(33, base + 61, STDOUT)
        + RECORD.pack(43, base + 62, STDERR)
        + RECORD.pack(61, base + 3600, STDOUT)
    )

    async def times_and_numbers(pilot: Pilot[None]) -> None:
        view = pilot.app.query_one(TranscriptView)
        view.show_line_numbers = True
        await pilot.press("t")

    app = PanelApp(directory / TRANSCRIPT_NAME)
    assert snap_compare(app, terminal_size=(60, 10), run_before=times_and_numbers)


async def test_goto_line_jumps_and_refuses_nonsense(tmp_path: Path) -> None:
    app = PanelApp(make_log(tmp_path / "g.log", 20_000))
    async with app.run_test(size=SIZE) as pilot:
        view, _ = parts(app)
        await wait_for(pilot, lambda: view.line_count == 20_000)
        await pilot.press("colon", *"12,345", "enter")
        assert view.cursor_line == 12_344 and not view.following
        assert "line 12345" in rows(view)
        await pilot.press("colon", *"soon", "enter")
        assert isinstance(app.screen, GotoLineDialog)
        assert "not a line number: 'soon'" in str(app.screen.query_one("#error").render())
        await pilot.press("ctrl+a", "ctrl+k", *"999999", "enter")  # past the end: the last
        assert view.cursor_line == 19_999
        assert rows(view)[-1] == "line 20000"
